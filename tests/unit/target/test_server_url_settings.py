"""The platform's server URLs: refused at start-up when no client library could use them."""

from __future__ import annotations

import pytest

from squall.target.settings import Settings, SettingsError


def test_urls_of_the_right_kinds_are_taken_from_either_variable() -> None:
    settings = Settings.from_env(
        {"DATABASE_URL": "postgres://u@db:5432/app", "SQUALL_REDIS_URL": "unix:///run/r.sock"}
    )
    assert settings.database_url == "postgres://u@db:5432/app"
    assert settings.redis_url == "unix:///run/r.sock"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SQUALL_DATABASE_URL", "garbage", r"SQUALL_DATABASE_URL .* has no scheme"),
        ("DATABASE_URL", "mysql://u:pw@db/app", r"SQUALL_DATABASE_URL .* has scheme 'mysql'"),
        ("SQUALL_REDIS_URL", "http://cache:6379", r"SQUALL_REDIS_URL .* has scheme 'http'"),
        ("REDIS_URL", "redis://[::1", r"SQUALL_REDIS_URL .* is not a URL"),
    ],
)
def test_a_url_of_another_kind_is_refused_by_name(variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message) as info:
        Settings.from_env({variable: value})
    assert "expected a URL starting with" in str(info.value)
    assert "pw" not in str(info.value)
