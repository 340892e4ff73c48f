"""The platform's server URLs: refused at start-up when no client library could use them."""

from __future__ import annotations

import pytest

from squall.target.settings import Settings, SettingsError


def test_urls_of_the_right_kinds_are_taken_from_either_variable() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgres://u@localhost:5432/app",
            "SQUALL_REDIS_URL": "unix:///run/r.sock",
        }
    )
    assert settings.database_url == "postgres://u@localhost:5432/app"
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


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "DATABASE_URL",
            "postgresql://postgres@192.0.2.2:5432/app",
            "SQUALL_DATABASE_URL (or DATABASE_URL when that is unset): host 192.0.2.2 is not a "
            "loopback address; squall only connects to this machine",
        ),
        (
            "SQUALL_REDIS_URL",
            "redis://%31%39%32.0.2.2:6379/0",
            "SQUALL_REDIS_URL (or REDIS_URL when that is unset): host 192.0.2.2 is not a "
            "loopback address",
        ),
        (
            "SQUALL_OPENAI_BASE_URL",
            "http://198.51.100.7:8000/v1",
            "SQUALL_OPENAI_BASE_URL: host 198.51.100.7 is not a loopback address",
        ),
    ],
)
def test_servers_off_this_machine_are_refused_before_any_connection(
    variable: str, value: str, message: str
) -> None:
    # The platform connects to this machine only, as the harness does.
    with pytest.raises(SettingsError) as info:
        Settings.from_env({variable: value})
    assert str(info.value).startswith(message)
