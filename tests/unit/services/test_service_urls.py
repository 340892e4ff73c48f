"""Server URLs checked before anything connects or starts (pure)."""

from __future__ import annotations

import pytest

from squall.services.urls import POSTGRES_SCHEMES, REDIS_SCHEMES, redact, scheme_problem


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:5432/test",
        "postgres://u:pw@localhost/db",
    ],
)
def test_postgres_urls_pass(url: str) -> None:
    assert scheme_problem(url, POSTGRES_SCHEMES) is None


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://h:6380", "unix:///run/redis.sock"]
)
def test_redis_urls_pass(url: str) -> None:
    assert scheme_problem(url, REDIS_SCHEMES) is None


def test_a_bare_word_has_no_scheme() -> None:
    assert scheme_problem("garbage", POSTGRES_SCHEMES) == (
        "'garbage' has no scheme, where postgresql:// or postgres:// is needed"
    )


def test_another_scheme_is_named_and_the_password_hidden() -> None:
    problem = scheme_problem("mysql://app:s3cret@db:3306/x", POSTGRES_SCHEMES)
    assert problem is not None
    assert "scheme 'mysql'" in problem
    assert "app:***@db" in problem
    assert "s3cret" not in problem


def test_a_postgres_url_is_not_a_redis_url() -> None:
    problem = scheme_problem("postgresql://h/db", REDIS_SCHEMES)
    assert problem is not None
    assert "redis:// or rediss:// or unix://" in problem


def test_an_unparseable_url_is_not_echoed() -> None:
    problem = scheme_problem("postgresql://u:pw@[::1/x", POSTGRES_SCHEMES)
    assert problem is not None
    assert problem.startswith("the value is not a URL")
    assert "pw" not in problem


def test_redact_keeps_everything_but_the_password() -> None:
    assert redact("postgresql://u:pw@h:1/db?x=1") == "postgresql://u:***@h:1/db?x=1"
    assert redact("redis://h:6379/0") == "redis://h:6379/0"
