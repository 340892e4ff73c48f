"""A platform squall started leaves no Redis keys behind on a Redis it shares."""

from __future__ import annotations

import pytest
import redis

from fresh_databases import fresh_database
from squall.services import Endpoints
from squall.services.platform import start_platform
from squall.services.stack import delete_keys

pytestmark = pytest.mark.integration


def test_stopping_the_platform_deletes_the_keys_of_its_prefix(endpoints: Endpoints) -> None:
    client = redis.Redis.from_url(endpoints.redis_url)
    try:
        with fresh_database(endpoints, "squall_keys") as database:
            platform = start_platform(database, endpoints.redis_url, workers=1)
            prefix = platform.redis_prefix
            assert prefix is not None
            # Another platform's key on the same server, whose prefix begins the same.
            neighbour = f"{prefix}x:kept"
            client.set(neighbour, "1")
            try:
                assert [*client.scan_iter(match=f"{prefix}:*")]  # it keeps state there
                platform.stop()
                assert [*client.scan_iter(match=f"{prefix}:*")] == []
                assert client.get(neighbour) == b"1"
            finally:
                platform.stop()
                client.delete(neighbour)
    finally:
        client.close()


def test_a_prefix_the_caller_chose_is_left_alone(endpoints: Endpoints) -> None:
    with fresh_database(endpoints, "squall_keys") as database:
        platform = start_platform(
            database,
            endpoints.redis_url,
            workers=1,
            settings={"SQUALL_REDIS_PREFIX": "squall-keys-own"},
        )
        platform.stop()
        assert platform.redis_prefix is None
        client = redis.Redis.from_url(endpoints.redis_url)
        try:
            assert [*client.scan_iter(match="squall-keys-own:*")]
        finally:
            delete_keys(endpoints.redis_url, "squall-keys-own")
            client.close()
