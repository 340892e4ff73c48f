"""Servers given by URL that run but want credentials: the message says which, where the
password goes, and never prints one. Each test starts a throw-away embedded server of its
own to protect with a password; the servers the other tests share are left as they are."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import redis

from squall.cli import main
from squall.services import Endpoints, ServiceUnavailable, services
from squall.services.embedded import EmbeddedPostgres, EmbeddedValkey

pytestmark = pytest.mark.integration


@pytest.fixture
def password() -> str:
    return secrets.token_hex(8)


@pytest.fixture
def protected_redis(password: str) -> Iterator[int]:
    """The port of a throw-away Redis server that wants ``password``."""
    server = EmbeddedValkey.start()
    try:
        client = redis.Redis.from_url(server.url)
        client.config_set("requirepass", password)
        client.close()
        yield server.port
    finally:
        server.stop()


def _refusal(database_url: str, redis_url: str) -> str:
    with pytest.raises(ServiceUnavailable) as info, services(database_url, redis_url, environ={}):
        pass
    return str(info.value)


def test_squall_run_names_the_missing_redis_password(
    protected_redis: int,
    password: str,
    endpoints: Endpoints,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"redis://127.0.0.1:{protected_redis}/0"
    monkeypatch.setenv("DATABASE_URL", endpoints.database_url)
    monkeypatch.setenv("REDIS_URL", url)
    monkeypatch.setenv("SQUALL_RESULTS_DB", "off")
    monkeypatch.chdir(tmp_path)
    argv = ["run", "--scenario", "db_race", "--results-dir", str(tmp_path / "results")]
    assert main(argv) == 3
    err = " ".join(capsys.readouterr().err.split())  # the terminal wraps long lines
    assert f"Redis at {url} needs a password, and REDIS_URL gives none" in err
    assert f"redis://:PASSWORD@127.0.0.1:{protected_redis}/0" in err
    assert "Start it" not in err
    assert "HELLO" not in err

    wrong = f"redis://:not-{password}@127.0.0.1:{protected_redis}/0"
    message = _refusal(endpoints.database_url, wrong)
    assert f"Redis at redis://:***@127.0.0.1:{protected_redis}/0 rejected the credentials" in (
        message
    )
    assert password not in message
    right = f"redis://:{password}@127.0.0.1:{protected_redis}/0"
    with services(endpoints.database_url, right, environ={}) as ep:
        assert ep.redis_url == right


def test_a_postgres_user_without_its_password_is_named(
    endpoints: Endpoints, password: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", "/nonexistent")  # no ~/.pgpass of the host's account
    server = EmbeddedPostgres.start()
    try:
        # The throw-away cluster trusts every local user; alice must give her password.
        hba = server.workdir / "data" / "pg_hba.conf"
        hba.write_text(f"host all alice 127.0.0.1/32 scram-sha-256\n{hba.read_text()}")

        async def add_alice() -> None:
            conn = await asyncpg.connect(server.url)
            try:
                await conn.execute(f"CREATE ROLE alice LOGIN PASSWORD '{password}'")
                await conn.execute("SELECT pg_reload_conf()")
            finally:
                await conn.close()

        asyncio.run(add_alice())
        at = f"127.0.0.1:{server.port}/postgres"
        message = _refusal(f"postgresql://alice@{at}", endpoints.redis_url)
        assert message.startswith(
            f"PostgreSQL at postgresql://alice@{at} needs a password for user 'alice', and "
            "neither DATABASE_URL nor PGPASSWORD gives one"
        )
        assert f"postgresql://alice:PASSWORD@{at}) or PGPASSWORD" in message
        assert "Start it" not in message

        message = _refusal(f"postgresql://alice:not-{password}@{at}", endpoints.redis_url)
        assert message.startswith(
            f"PostgreSQL at postgresql://alice:***@{at} rejected the password of user 'alice'"
        )
        assert password not in message

        # A password file's line for alice: its password is the one asyncpg sends.
        passfile = tmp_path / "pgpass"
        passfile.write_text(f"127.0.0.1:{server.port}:postgres:alice:not-{password}\n")
        passfile.chmod(0o600)
        monkeypatch.setenv("PGPASSFILE", str(passfile))
        message = _refusal(f"postgresql://alice@{at}", endpoints.redis_url)
        assert message.startswith(
            f"PostgreSQL at postgresql://alice@{at} rejected the password of user 'alice' "
            f"from the password file {passfile}. Fix it there"
        )
        assert password not in message
        passfile.write_text(f"127.0.0.1:{server.port}:postgres:alice:{password}\n")
        with services(f"postgresql://alice@{at}", endpoints.redis_url, environ={}):
            pass
        monkeypatch.setenv("PGPASSFILE", "/nonexistent")

        message = _refusal(f"postgresql://nobody@{at}", endpoints.redis_url)
        assert "refuses user 'nobody': role \"nobody\" does not exist" in message
        with services(f"postgresql://alice:{password}@{at}", endpoints.redis_url, environ={}):
            pass
    finally:
        server.stop()
