"""Where a server URL points, as the platform's start-up messages name it (pure)."""

from __future__ import annotations

import pytest

from squall.target.preflight import where


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://postgres@127.0.0.1:5432/postgres", "127.0.0.1:5432"),
        ("postgresql://app:s3cret@db.internal/app", "db.internal"),
        ("redis://[::1]:6380/0", "[::1]:6380"),
        ("unix:///run/redis/redis.sock", "/run/redis/redis.sock"),
    ],
)
def test_host_and_port_without_credentials(url: str, shown: str) -> None:
    assert where(url) == shown
