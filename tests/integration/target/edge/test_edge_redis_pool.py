"""Bursts of Redis commands wait for a pooled connection instead of failing.

redis-py's default pool raises ``MaxConnectionsError`` once ``max_connections`` are
busy; the platform's clients (``squall.target.redis_pool``) wait instead. The control
test shows the burst used here does exhaust a plain pool of the same size, so the
other tests would fail with the platform's former clients. After a Redis restart they
reconnect instead of failing the first command on each dead connection.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis
from edge_client import Platform, recv, unique, user_message
from redis.exceptions import ConnectionError, MaxConnectionsError
from websockets.asyncio.client import connect

from squall.services.embedded import EmbeddedValkey
from squall.target import redis_pool
from squall.target.settings import Settings

pytestmark = pytest.mark.integration

POOL = 2
BURST = 60
SOCKETS = 40


async def _burst(client: aioredis.Redis, key: str) -> list[int]:
    return await asyncio.gather(*(client.incr(key) for _ in range(BURST)))


async def test_a_plain_pool_of_that_size_fails_under_the_burst(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url, max_connections=POOL)
    try:
        with pytest.raises(MaxConnectionsError):
            await _burst(client, f"pool-control:{uuid.uuid4().hex}")
    finally:
        await client.aclose()


async def test_the_platform_client_waits_for_a_connection(redis_url: str) -> None:
    settings = Settings(redis_url=redis_url, redis_max_connections=POOL)
    client = redis_pool.connect(settings)
    key = f"pool-wait:{uuid.uuid4().hex}"
    try:
        values = await _burst(client, key)
        assert sorted(values) == list(range(1, BURST + 1))
        assert client.connection_pool.max_connections == POOL
        await client.delete(key)
    finally:
        await client.aclose()


async def test_the_platform_client_reconnects_after_a_redis_restart() -> None:
    """Every pooled connection is dead after a restart; the first command on each is sent
    again on a new one (a plain client of redis-py fails it: the control below)."""
    server = EmbeddedValkey.start()
    settings = Settings(redis_url=server.url, redis_max_connections=POOL)
    client = redis_pool.connect(settings)
    plain = aioredis.Redis.from_url(server.url)
    try:
        assert await asyncio.gather(client.incr("k"), client.incr("k"), plain.ping())
        await server.restart()
        with pytest.raises(ConnectionError):
            await plain.ping()
        assert sorted(await asyncio.gather(client.incr("k"), client.incr("k"))) == [1, 2]
    finally:
        await client.aclose()
        await plain.aclose()
        server.stop()


@pytest.fixture(scope="module")
def platform(platform_factory: Callable[..., Platform]) -> Platform:
    return platform_factory(workers=1, SQUALL_REDIS_MAX_CONNECTIONS=str(POOL))


async def test_sockets_arriving_at_once_are_all_admitted_and_served(platform: Platform) -> None:
    users = [unique("burst") for _ in range(SOCKETS)]
    sockets = await asyncio.gather(
        *(connect(platform.ws_url, additional_headers=platform.headers(u)) for u in users)
    )
    try:
        hellos = await asyncio.gather(*(recv(ws) for ws in sockets))
        assert [h["type"] for h in hellos] == ["hello"] * SOCKETS
        await asyncio.gather(*(ws.send(user_message(unique("t"))) for ws in sockets))
        acks = await asyncio.gather(*(recv(ws) for ws in sockets))
        assert [a["type"] for a in acks] == ["ack"] * SOCKETS, [
            a for a in acks if a["type"] != "ack"
        ]
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))
