"""The connection settings: parsed from the environment, refused when unusable."""

from __future__ import annotations

import pytest

from squall.target.db import pool_size
from squall.target.settings import Settings, SettingsError


def test_pool_settings_are_read_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "SQUALL_REDIS_MAX_CONNECTIONS": "4",
            "SQUALL_REDIS_POOL_TIMEOUT_S": "2.5",
            "SQUALL_DB_POOL_SIZE": "12",
            "SQUALL_DATABASE_OUTAGE_WAIT_S": "0",
            "SQUALL_REDIS_OUTAGE_WAIT_S": "2.5",
            "SQUALL_SOCKET_WRITE_TIMEOUT_S": "0",
            "SQUALL_WORKER_RESTARTS": "0",
            "SQUALL_SUBMIT_OUTAGE_WAIT_S": "0.5",
            "SQUALL_WORKER_RESTART_WINDOW_S": "2.5",
        }
    )
    assert (settings.redis_max_connections, settings.redis_pool_timeout_s) == (4, 2.5)
    assert settings.db_pool_size == 12
    assert settings.database_outage_wait_s == 0  # fail at once, as before the wait existed
    assert Settings().database_outage_wait_s == 30
    assert settings.redis_outage_wait_s == 2.5
    assert Settings().redis_outage_wait_s == 30
    assert settings.socket_write_timeout_s == 0  # off
    assert Settings().socket_write_timeout_s == 10
    assert (settings.worker_restarts, settings.worker_restart_window_s) == (0, 2.5)
    assert (settings.submit_outage_wait_s, Settings().submit_outage_wait_s) == (0.5, 2)
    assert (Settings().worker_restarts, Settings().worker_restart_window_s) == (5, 60)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SQUALL_REDIS_MAX_CONNECTIONS", "0", "expected a positive integer"),
        ("SQUALL_REDIS_POOL_TIMEOUT_S", "0", "number of seconds > 0"),
        ("SQUALL_DB_POOL_SIZE", "-1", "expected 0"),
        ("SQUALL_DATABASE_OUTAGE_WAIT_S", "-1", "0 or more"),
        ("SQUALL_REDIS_OUTAGE_WAIT_S", "-0.5", "0 or more"),
        ("SQUALL_SOCKET_WRITE_TIMEOUT_S", "-1", "or more"),
        ("SQUALL_SUBMIT_OUTAGE_WAIT_S", "-1", "0 or more"),
        ("SQUALL_WORKER_RESTARTS", "-1", "expected 0"),
        ("SQUALL_WORKER_RESTART_WINDOW_S", "0", "number of seconds > 0"),
    ],
)
def test_unusable_pool_settings_are_refused(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=f"{name}=.*{message}"):
        Settings.from_env({name: value})


def test_derived_database_pool_grows_with_run_slots_within_bounds() -> None:
    assert pool_size(1) == 8
    assert pool_size(32) == 24
    assert pool_size(64) == 32
    assert pool_size(1000) == 32
