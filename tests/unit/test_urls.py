"""Server URLs checked before anything connects or starts (pure)."""

from __future__ import annotations

import pytest

from squall.urls import (
    POSTGRES_SCHEMES,
    REDIS_SCHEMES,
    credentials,
    redact,
    url_problem,
    with_credentials,
)


@pytest.mark.parametrize(
    ("url", "schemes"),
    [
        ("postgresql://postgres@127.0.0.1:5432/test", POSTGRES_SCHEMES),
        ("postgres://u:pw@localhost/db", POSTGRES_SCHEMES),
        ("postgresql://u@127.0.0.1:5432,[::1]:5433/db", POSTGRES_SCHEMES),
        ("postgresql:///db?host=/run/postgresql", POSTGRES_SCHEMES),
        ("redis://127.0.0.1:6379/0", REDIS_SCHEMES),
        ("redis://127.0.0.1:6379/", REDIS_SCHEMES),
        ("rediss://h:6380", REDIS_SCHEMES),
        ("unix:///run/redis.sock", REDIS_SCHEMES),
    ],
)
def test_urls_of_each_kind_pass(url: str, schemes: tuple[str, ...]) -> None:
    assert url_problem(url, schemes) is None


def test_a_bare_word_has_no_scheme() -> None:
    assert url_problem("garbage", POSTGRES_SCHEMES) == (
        "'garbage' has no scheme, where postgresql:// or postgres:// is needed"
    )


def test_another_scheme_is_named_and_the_password_hidden() -> None:
    problem = url_problem("mysql://app:s3cret@db:3306/x", POSTGRES_SCHEMES)
    assert problem is not None
    assert "scheme 'mysql'" in problem
    assert "app:***@db" in problem
    assert "s3cret" not in problem


def test_a_postgres_url_is_not_a_redis_url() -> None:
    problem = url_problem("postgresql://h/db", REDIS_SCHEMES)
    assert problem is not None
    assert "redis:// or rediss:// or unix://" in problem


def test_an_unparseable_url_is_not_echoed() -> None:
    problem = url_problem("postgresql://u:pw@[::1/x", POSTGRES_SCHEMES)
    assert problem is not None
    assert problem.startswith("the value is not a URL")
    assert "pw" not in problem


@pytest.mark.parametrize(
    ("url", "schemes", "clause"),
    [
        ("postgresql://127.0.0.1:99999/x", POSTGRES_SCHEMES, "has a bad port (Port out of range"),
        ("postgresql://u@h1:5432,h2:x/db", POSTGRES_SCHEMES, "has a bad port"),
        ("redis://127.0.0.1:abc/0", REDIS_SCHEMES, "has a bad port"),
        ("redis://127.0.0.1/abc", REDIS_SCHEMES, "where a database number like /0 is needed"),
        ("ws://:8765/v1/ws", ("ws", "wss"), "names no host"),
        # Every connect failed on it ("fragment identifier is meaningless"), exit 1.
        ("ws://127.0.0.1:8765/v1/ws#f", ("ws", "wss"), "has a fragment (#f), which a WebSocket"),
        ("ws://127.0.0.1:8765/v1/ws#", ("ws", "wss"), "has a fragment (#)"),
    ],
)
def test_ports_hosts_and_redis_databases_are_checked(
    url: str, schemes: tuple[str, ...], clause: str
) -> None:
    problem = url_problem(url, schemes, host_required=True)
    assert problem is not None
    assert clause in problem


def test_postgres_needs_no_host() -> None:
    # libpq then takes the host from PGHOST or its Unix socket
    assert url_problem("postgresql:///db", POSTGRES_SCHEMES) is None


def test_redact_keeps_everything_but_the_password() -> None:
    assert redact("postgresql://u:pw@h:1/db?x=1") == "postgresql://u:***@h:1/db?x=1"
    assert redact("redis://h:6379/0") == "redis://h:6379/0"
    # asyncpg and redis-py take the password as a query parameter too.
    assert redact("redis://h/0?password=pw&db=1") == "redis://h/0?password=***&db=1"
    assert redact("postgresql://u@h/db?sslmode=off&password=pw") == (
        "postgresql://u@h/db?sslmode=off&password=***"
    )
    assert redact("redis://h/0?oldpassword=x") == "redis://h/0?oldpassword=x"


def test_credentials_name_the_user_and_whether_a_password_is_given() -> None:
    assert credentials("postgresql://al%40ice:pw@h/db") == ("al@ice", True)
    assert credentials("postgresql://h/db?user=bob") == ("bob", False)
    assert credentials("redis://h/0?username=bob&password=pw") == ("bob", True)
    assert credentials("redis://:pw@h/0") == (None, True)
    assert credentials("redis://h/0?password=") == (None, False)


def test_with_credentials_shows_where_the_password_goes() -> None:
    assert with_credentials("redis://:pw@h:1/0?password=pw&db=1", "") == (
        "redis://:PASSWORD@h:1/0?db=1"
    )
    assert with_credentials("postgresql://h1,h2:5/db?host=/s", "al@ice") == (
        "postgresql://al%40ice:PASSWORD@h1,h2:5/db?host=/s"
    )
