"""A server given by URL that does not answer, or answers with a refusal: one sentence per
clause, however its client library ends its own message, and the fix for the problem at
hand (start it, or give the credentials it wants, never printing a password)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
import redis

from squall.refusals import reason
from squall.services import ServiceUnavailable
from squall.services.stack import (
    ServiceUrlError,
    _check_postgres,
    _check_redis,
    _postgres_refusal,
    _redis_refusal,
)
from squall.target.preflight import check_servers
from squall.target.settings import Settings, SettingsError


def test_the_reason_loses_a_final_period_only() -> None:
    refused = ConnectionError("Error 111 connecting to 127.0.0.1:1. Connect call failed.")
    assert reason(refused) == "Error 111 connecting to 127.0.0.1:1. Connect call failed"
    assert reason(OSError("no route")) == "no route"
    assert reason(TimeoutError()) == "TimeoutError"


def _refusal(check: Callable[[str], Awaitable[None]], url: str) -> str:
    with pytest.raises(ServiceUnavailable) as info:
        asyncio.run(check(url))
    return str(info.value)


def test_an_unreachable_server_reads_as_sentences() -> None:
    # Nothing listens on port 1: the connection is refused at once. redis-py ends its
    # message with a period, asyncpg does not.
    redis = _refusal(_check_redis, "redis://127.0.0.1:1/0")
    postgres = _refusal(_check_postgres, "postgresql://postgres@127.0.0.1:1/postgres")
    for message, variable in ((redis, "REDIS_URL"), (postgres, "DATABASE_URL")):
        assert ".." not in message
        assert f"). Start it, fix {variable}, or unset {variable}" in message


def test_a_redis_wanting_a_password_is_not_told_to_start() -> None:
    # redis-py's words when a client without a password says HELLO to such a server.
    hello = redis.AuthenticationError("HELLO must be called with the client already ...")
    url = "redis://127.0.0.1:6380/2"
    for exc in (hello, redis.ResponseError("NOAUTH Authentication required.")):
        message = _redis_refusal(url, exc)
        assert message.startswith(f"Redis at {url} needs a password, and REDIS_URL gives none")
        assert "redis://:PASSWORD@127.0.0.1:6380/2" in message
        assert "HELLO" not in message
        assert "Start it" not in message


@pytest.mark.parametrize(
    ("url", "user", "form"),
    [
        ("redis://:hunter2@127.0.0.1:6380/0", "default", "redis://:PASSWORD@127.0.0.1:6380/0"),
        ("redis://bob:hunter2@[::1]:6380/0", "bob", "redis://bob:PASSWORD@[::1]:6380/0"),
        ("redis://127.0.0.1/0?password=hunter2", "default", "redis://:PASSWORD@127.0.0.1/0"),
    ],
)
def test_rejected_redis_credentials_name_the_user_not_the_password(
    url: str, user: str, form: str
) -> None:
    wrong = redis.AuthenticationError("invalid username-password pair or user is disabled.")
    message = _redis_refusal(url, wrong)
    assert "hunter2" not in message
    assert f"rejected the credentials in REDIS_URL (user {user!r}: invalid username-" in message
    assert f"Fix the password (or user) in REDIS_URL ({form})" in message
    assert ".." not in message


def test_a_redis_refusing_a_command_is_running() -> None:
    message = _redis_refusal("redis://127.0.0.1:6380/99", redis.ResponseError("DB index is out"))
    assert message.startswith("Redis at redis://127.0.0.1:6380/99 refuses the connection: DB")
    assert "Start it" not in message


def test_a_postgres_password_goes_in_the_url_or_pgpassword(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    failed = asyncpg.InvalidPasswordError('password authentication failed for user "alice"')
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", "/nonexistent")  # no ~/.pgpass of the host's account
    message = _postgres_refusal("postgresql://alice@127.0.0.1:5433/app", failed)
    assert message.startswith(
        "PostgreSQL at postgresql://alice@127.0.0.1:5433/app needs a password for user 'alice'"
    )
    assert "DATABASE_URL (postgresql://alice:PASSWORD@127.0.0.1:5433/app) or PGPASSWORD" in message
    monkeypatch.setenv("PGPASSWORD", "hunter2")
    monkeypatch.setenv("PGUSER", "carol")  # the user when the URL names none
    message = _postgres_refusal("postgresql://127.0.0.1:5433/app", failed)
    assert "rejected the password of user 'carol'. Fix it in DATABASE_URL" in message
    assert "hunter2" not in message
    message = _postgres_refusal("postgresql://alice:hunter2@127.0.0.1:5433/app", failed)
    assert "postgresql://alice:***@127.0.0.1:5433/app rejected the password of user 'alice'" in (
        message
    )
    assert "hunter2" not in message


def test_a_rejected_postgres_password_from_the_password_file_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failed = asyncpg.InvalidPasswordError('password authentication failed for user "alice"')
    passfile = tmp_path / "pgpass"
    passfile.write_text("127.0.0.1:5433:app:alice:hunter2\n")
    passfile.chmod(0o600)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    message = _postgres_refusal("postgresql://alice@127.0.0.1:5433/app", failed)
    assert message == (
        "PostgreSQL at postgresql://alice@127.0.0.1:5433/app rejected the password of user "
        f"'alice' from the password file {passfile}. Fix it there, or put the right one in "
        "DATABASE_URL (postgresql://alice:PASSWORD@127.0.0.1:5433/app) or PGPASSWORD, or unset "
        "DATABASE_URL to use the embedded server."
    )
    # A file without a line for this server, database and user gave no password.
    message = _postgres_refusal("postgresql://alice@127.0.0.1:5433/shop", failed)
    assert "needs a password for user 'alice', and neither DATABASE_URL nor PGPASSWORD" in message
    assert str(passfile) not in message


def test_a_postgres_refusing_a_user_or_database_is_running() -> None:
    role = asyncpg.InvalidAuthorizationSpecificationError('role "nobody" does not exist')
    message = _postgres_refusal("postgresql://nobody@127.0.0.1:5433/app", role)
    assert "refuses user 'nobody': role \"nobody\" does not exist. Name a user it" in message
    database = asyncpg.InvalidCatalogNameError('database "app" does not exist')
    message = _postgres_refusal("postgresql://nobody@127.0.0.1:5433/app", database)
    assert 'refuses the connection: database "app" does not exist. Fix DATABASE_URL' in message
    for message in (_postgres_refusal("postgresql://127.0.0.1:1/x", e) for e in (role, database)):
        assert "Start it" not in message


@pytest.mark.parametrize(
    ("check", "url", "setting", "refused"),
    [
        (
            _check_postgres,
            "postgresql://postgres@127.0.0.1:1/postgres?sslmode=bogus",
            "DATABASE_URL",
            "sslmode",
        ),
        (_check_redis, "redis://127.0.0.1:1/0?socket_timeout=abc", "REDIS_URL", "socket_timeout"),
    ],
)
def test_an_option_the_client_refuses_is_a_setting_to_fix(
    check: Callable[[str], Awaitable[None]], url: str, setting: str, refused: str
) -> None:
    # The client library's ValueError escaped as a traceback (exit 1), before any connect.
    with pytest.raises(ServiceUrlError) as info:
        asyncio.run(check(url))
    message = str(info.value)
    assert message.startswith(f"{setting}: '{url}' has an option the "), message
    assert refused in message
    assert f"Fix {setting}, or unset it" in message
    assert "Start it" not in message


def test_the_platform_names_an_option_its_client_refuses() -> None:
    url = "postgresql://postgres@127.0.0.1:1/postgres?sslmode=bogus"
    with pytest.raises(SettingsError) as info:
        check_servers(Settings.from_env({"SQUALL_DATABASE_URL": url}))
    message = str(info.value)
    assert message.startswith(f"SQUALL_DATABASE_URL='{url}' has an option the PostgreSQL")
    assert message.endswith("fix SQUALL_DATABASE_URL")


@pytest.mark.parametrize(
    ("check", "scheme", "setting"),
    [
        (_check_postgres, "postgresql://postgres@", "DATABASE_URL"),
        (_check_redis, "redis://", "REDIS_URL"),
    ],
)
def test_a_listener_that_is_not_the_server_is_not_to_be_started(
    check: Callable[[str], Awaitable[None]], scheme: str, setting: str
) -> None:
    # Something that accepts and hangs up at once (another server's port): the message
    # said "Start it", though something runs there.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def hang_up() -> None:
            with contextlib.suppress(OSError):
                while True:
                    accepted, _ = listener.accept()
                    accepted.close()

        threading.Thread(target=hang_up, daemon=True).start()
        path = "/postgres" if setting == "DATABASE_URL" else "/0"
        message = _refusal(check, f"{scheme}127.0.0.1:{port}{path}")
    assert message.startswith(f"something listens at 127.0.0.1:{port}, but did not answer as ")
    assert f"Fix {setting}, or unset {setting}" in message
    assert "Start it" not in message


def test_a_client_file_the_user_may_not_read_names_it_and_home(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # asyncpg stats ~/.postgresql/postgresql.key and raises on one it may not (a non-root
    # user whose HOME is /root, as `docker run --user` leaves it): the message blamed the
    # server ("did not answer as PostgreSQL does") for the client's HOME.
    monkeypatch.setenv("HOME", "/root")
    denied = PermissionError(13, "Permission denied", "/root/.postgresql/postgresql.key")
    message = _postgres_refusal("postgresql://postgres@127.0.0.1:5432/postgres", denied)
    assert message == (
        "cannot connect to PostgreSQL at postgresql://postgres@127.0.0.1:5432/postgres: the "
        "PostgreSQL client could not read /root/.postgresql/postgresql.key (Permission "
        "denied): it looks for client certificates under ~/.postgresql, and HOME is '/root'. "
        "Point HOME at a folder this user may read (or make that one readable)."
    )
    # Any other permission error is not the client's file.
    other = _postgres_refusal("postgresql://127.0.0.1:1/x", PermissionError("no filename"))
    assert "HOME" not in other
