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
        ("SQUALL_DATABASE_URL", "garbage", r"SQUALL_DATABASE_URL .* has no scheme, where post"),
        ("DATABASE_URL", "mysql://u:pw@db/app", r"SQUALL_DATABASE_URL .* has scheme 'mysql'"),
        ("SQUALL_REDIS_URL", "http://cache:6379", r"SQUALL_REDIS_URL .* has scheme 'http'"),
        ("REDIS_URL", "redis://[::1", r"SQUALL_REDIS_URL .* is not a URL"),
        ("DATABASE_URL", "postgresql://u:pw@db:99999/app", r"_DATABASE_URL .* has a bad port"),
        ("SQUALL_REDIS_URL", "redis://cache:6379/one", r"a database number like /0 is needed"),
    ],
)
def test_an_unusable_url_is_refused_by_name(variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message) as info:
        Settings.from_env({variable: value})
    assert "pw" not in str(info.value)
