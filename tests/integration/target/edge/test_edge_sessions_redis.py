"""single_session when pub/sub loses kicks: one published while the hubs reconnect (to a
Redis that stalled, say), and a Redis that comes back empty. Either way exactly one socket
stays open."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from edge_client import (
    Platform,
    close_code,
    open_socket,
    running_platform_on_redis,
    time_scale,
    unique,
)
from websockets.asyncio.client import ClientConnection

from squall.services import Endpoints
from squall.services.embedded import EmbeddedValkey

pytestmark = pytest.mark.integration

#: Commands and the hubs' PING wait half a second.
COMMAND_TIMEOUT = {"SQUALL_REDIS_COMMAND_TIMEOUT_S": "0.5"}
WITHIN_S = 15.0


@pytest.fixture
def platform(
    endpoints: Endpoints, redis_server: EmbeddedValkey, tmp_path: Path
) -> Iterator[Platform]:
    with running_platform_on_redis(
        redis_server,
        endpoints,
        tmp_path,
        2,
        SQUALL_SESSION_POLICY="single_session",
        **COMMAND_TIMEOUT,
    ) as started:
        yield started


async def still_open(ws: ClientConnection) -> None:
    await ws.send('{"type":"ping"}')
    async with asyncio.timeout(WITHIN_S * time_scale()):
        while True:
            if '"pong"' in str(await ws.recv()):
                return


async def test_a_kick_pub_sub_lost_is_caught_up_when_the_hubs_reconnect(
    platform: Platform, redis_server: EmbeddedValkey
) -> None:
    # A login whose kick was published while the older socket's hub was reconnecting (a
    # Redis that stalled, say): the counter says generation 2, no kick arrives, and both
    # sockets stayed open for good. Here the counter is raised without the announcement,
    # then every pub/sub connection is dropped.
    user = unique("lost")
    older, _ = await open_socket(platform, user)
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        assert await client.incr(f"{platform.settings.redis_prefix}:session:{user}") == 2
        assert await client.client_kill_filter(_type="pubsub") >= 2  # both workers' hubs
    finally:
        await client.aclose()
    assert await close_code(older) == 4409


async def test_a_redis_come_back_empty_still_leaves_one_socket(
    platform: Platform, redis_server: EmbeddedValkey
) -> None:
    # The generation counter restarted at 0: a new login was generation 1, below the open
    # socket's 3, and was closed at once on that worker, or both stayed open on two.
    user = unique("empty")
    sockets = [(await open_socket(platform, user))[0] for _ in range(3)]
    for ws in sockets[:2]:
        assert await close_code(ws) == 4409
    await redis_server.restart()
    # The open socket's hub reconnects and raises the counter to its session.
    key = f"{platform.settings.redis_prefix}:session:{user}"
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        deadline = time.monotonic() + WITHIN_S * time_scale()
        while await client.get(key) != b"3":
            assert time.monotonic() < deadline, "the counter was not raised after the restart"
            await asyncio.sleep(0.1)
    finally:
        await client.aclose()
    newest, hello = await open_socket(platform, user)
    assert hello["session"] == 4
    assert await close_code(sockets[2]) == 4409
    await still_open(newest)
    await newest.close()
