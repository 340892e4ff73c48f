"""``squall target serve`` checks PostgreSQL, its schema and Redis before any worker starts."""

from __future__ import annotations

import asyncio
import os
import socket
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from squall.cli import main
from squall.services import Endpoints
from squall.target.db import create_pool
from squall.target.migrations import NEWEST_VERSION, SchemaRefused, migrate
from squall.target.preflight import ServerUnreachable, check_servers
from squall.target.settings import Settings


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_reachable_servers_pass(endpoints: Endpoints) -> None:
    check_servers(Settings(database_url=endpoints.database_url, redis_url=endpoints.redis_url))


def test_a_down_postgresql_is_named_with_its_variable(endpoints: Endpoints) -> None:
    port = _closed_port()
    settings = Settings(
        database_url=f"postgresql://app:s3cret@127.0.0.1:{port}/app",
        redis_url=endpoints.redis_url,
    )
    with pytest.raises(ServerUnreachable) as info:
        check_servers(settings)
    message = str(info.value)
    assert f"cannot use PostgreSQL at 127.0.0.1:{port} (SQUALL_DATABASE_URL)" in message
    assert "point SQUALL_DATABASE_URL (or DATABASE_URL when that is unset)" in message
    assert "s3cret" not in message


def test_a_down_redis_stops_serve_before_any_worker(
    endpoints: Endpoints, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = _closed_port()
    monkeypatch.setenv("SQUALL_DATABASE_URL", endpoints.database_url)
    monkeypatch.setenv("SQUALL_REDIS_URL", f"redis://127.0.0.1:{port}/0")
    before = dict(os.environ)
    assert main(["target", "serve", "--port", "0"]) == 3
    err = " ".join(capsys.readouterr().err.split())
    assert f"squall target: cannot use Redis at 127.0.0.1:{port} (SQUALL_REDIS_URL)" in err
    assert "Traceback" not in err
    assert dict(os.environ) == before


def test_servers_that_answer_and_refuse_are_not_to_be_started(endpoints: Endpoints) -> None:
    # A database the server does not have, a Redis database index it does not have: both
    # servers run, so the fix is in the URL, worded as squall run words it.
    parts = urlsplit(endpoints.database_url)
    missing_db = urlunsplit(parts._replace(path="/squall_no_such_database"))
    settings = Settings(database_url=missing_db, redis_url=endpoints.redis_url)
    with pytest.raises(ServerUnreachable) as info:
        check_servers(settings)
    message = str(info.value)
    assert message.startswith(f"PostgreSQL at {missing_db} refuses the connection: database")
    assert message.endswith(
        "Fix SQUALL_DATABASE_URL, or DATABASE_URL when SQUALL_DATABASE_URL is unset."
    )
    assert "start it" not in message.lower()
    no_such_index = urlunsplit(urlsplit(endpoints.redis_url)._replace(path="/99999"))
    settings = Settings(database_url=endpoints.database_url, redis_url=no_such_index)
    with pytest.raises(ServerUnreachable) as info:
        check_servers(settings)
    message = str(info.value)
    assert message.startswith(f"Redis at {no_such_index} refuses the connection: ")
    assert message.endswith("Fix SQUALL_REDIS_URL, or REDIS_URL when SQUALL_REDIS_URL is unset.")
    assert "start it" not in message.lower()


def test_a_redis_url_option_its_client_refuses_is_a_setting_to_fix(
    endpoints: Endpoints, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # redis-py's ValueError escaped as a traceback (exit 1).
    url = f"{endpoints.redis_url}?socket_timeout=abc"
    monkeypatch.setenv("SQUALL_DATABASE_URL", endpoints.database_url)
    monkeypatch.setenv("SQUALL_REDIS_URL", url)
    assert main(["target", "serve", "--port", "0"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"squall target: SQUALL_REDIS_URL='{url}' has an option the Redis client" in err
    assert "socket_timeout" in err
    assert "Traceback" not in err


def _sql(url: str, *statements: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(url)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


def _serve(url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("SQUALL_DATABASE_URL", url)
    monkeypatch.setenv("SQUALL_REDIS_URL", redis_url)
    return main(["target", "serve", "--port", "0"])


def test_a_schema_a_newer_platform_migrated_is_refused_before_any_worker(
    fresh_db: str,
    endpoints: Endpoints,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An older platform started silently on a newer schema; the database's newer functions
    # counted queued runs its scheduler never uncounted, and the thread stayed full for good.
    asyncio.run(_migrated(fresh_db))
    _sql(
        fresh_db,
        f"INSERT INTO schema_migrations (version, name) VALUES ({NEWEST_VERSION + 1}, 'x')",
    )
    assert _serve(fresh_db, endpoints.redis_url, monkeypatch) == 2
    err = " ".join(capsys.readouterr().err.split())
    database = urlsplit(fresh_db).path.lstrip("/")
    assert (
        f"the schema of database {database!r} is at version {NEWEST_VERSION + 1}, newer than "
        f"version {NEWEST_VERSION}, the newest this platform knows" in err
    )
    assert "Run the newer squall's platform, or give the platform a database of its own" in err
    assert "Traceback" not in err


async def _migrated(url: str) -> None:
    pool = await create_pool(url, max_size=1)
    try:
        await migrate(pool)
    finally:
        await pool.close()


@pytest.mark.parametrize(
    ("statements", "expected"),
    [
        (
            # golang-migrate's table of the same name
            [
                "CREATE TABLE schema_migrations (version bigint PRIMARY KEY, dirty boolean)",
                "INSERT INTO schema_migrations VALUES (20240101120000, false)",
            ],
            "' is not the platform's (it lacks an integer version "
            "and a text name; it has dirty:boolean, version:bigint): another application",
        ),
        (
            ["CREATE TABLE accounts (id serial PRIMARY KEY, email text)"],
            " already holds table(s) accounts but no migration of the platform's",
        ),
        (
            # The platform's schema_migrations, empty, beside another application's table.
            [
                "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text)",
                "CREATE TABLE accounts (id serial PRIMARY KEY, email text)",
            ],
            " already holds table(s) accounts but no migration of the platform's",
        ),
    ],
)
def test_another_applications_tables_are_refused_untouched(
    fresh_db: str,
    endpoints: Endpoints,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    statements: list[str],
    expected: str,
) -> None:
    _sql(fresh_db, *statements)
    assert _serve(fresh_db, endpoints.redis_url, monkeypatch) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert expected in err
    assert "give the platform a database of its own (SQUALL_DATABASE_URL)" in err
    assert "Traceback" not in err


async def test_migrate_refuses_a_newer_schema_with_nothing_applied(fresh_db: str) -> None:
    # A worker started on its own (not through serve's check) refuses it too.
    await _migrated(fresh_db)
    pool = await create_pool(fresh_db, max_size=1)
    try:
        await pool.execute("DELETE FROM schema_migrations WHERE version = $1", NEWEST_VERSION)
        await pool.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, 'x')", NEWEST_VERSION + 1
        )
        with pytest.raises(SchemaRefused, match="newer than version"):
            await migrate(pool)
        assert NEWEST_VERSION not in {
            r["version"] for r in await pool.fetch("SELECT version FROM schema_migrations")
        }
    finally:
        await pool.close()
