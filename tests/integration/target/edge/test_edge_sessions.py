"""single_session across workers, the per-user rate limit, and a clean SIGTERM shutdown."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable

import psutil
import pytest
import redis.asyncio as aioredis
from edge_client import (
    INTERNAL_ERRORS,
    Platform,
    close_code,
    counter_reaches,
    open_socket,
    recv,
    unique,
    user_message,
)
from websockets.asyncio.client import connect

pytestmark = pytest.mark.integration

LOGINS = 6
BURST = 3


@pytest.fixture(scope="module")
def platform(platform_factory: Callable[..., Platform]) -> Platform:
    return platform_factory(
        workers=2,
        SQUALL_SESSION_POLICY="single_session",
        SQUALL_MESSAGE_BURST=str(BURST),
        SQUALL_MESSAGES_PER_SECOND="0.001",
    )


async def test_concurrent_logins_leave_exactly_one(platform: Platform) -> None:
    user = unique("solo")
    headers = platform.headers(user)
    sockets = await asyncio.gather(
        *(connect(platform.ws_url, additional_headers=headers) for _ in range(LOGINS))
    )
    watchers = {asyncio.create_task(close_code(ws)): ws for ws in sockets}
    codes: list[int] = []
    async with asyncio.timeout(20):
        while len(codes) < LOGINS - 1:
            done, _ = await asyncio.wait(watchers, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                codes.append(task.result())
                del watchers[task]
    assert codes == [4409] * (LOGINS - 1)
    assert len(watchers) == 1
    [(task, survivor)] = watchers.items()
    task.cancel()
    await survivor.send(json.dumps({"type": "ping", "id": "alive"}))
    while (frame := await recv(survivor))["type"] != "pong":
        assert frame["type"] == "hello"
    assert frame["id"] == "alive"
    # A later login replaces the survivor.
    newest, hello = await open_socket(platform, user)
    assert await asyncio.wait_for(close_code(survivor), 10) == 4409
    assert hello["session"] > LOGINS - 1
    await newest.close()


async def test_rate_limit_per_user(platform: Platform) -> None:
    ws, _ = await open_socket(platform, unique("chatty"))
    thread = unique("t")
    for i in range(BURST + 2):
        await ws.send(user_message(thread, msg=f"r{i}"))
    outcomes: dict[str, str] = {}
    async with asyncio.timeout(20):
        while len(outcomes) < BURST + 2:
            frame = await recv(ws)
            if frame["type"] in ("ack", "error"):
                outcomes[frame["client_msg_id"]] = frame.get("code", "ack")
    assert sorted(outcomes.values()) == ["ack"] * BURST + ["rate_limited"] * 2
    await ws.send(json.dumps({"type": "ping", "id": 1}))
    async with asyncio.timeout(20):
        while (await recv(ws))["type"] != "pong":
            pass
    await ws.close()


@pytest.fixture
def server(platform_factory: Callable[..., Platform]) -> Platform:
    """A platform of its own, since the test stops it."""
    return platform_factory(workers=2)


async def test_sigterm_closes_sockets_with_1001_and_exits_cleanly(server: Platform) -> None:
    workers = psutil.Process(server.process.pid).children(recursive=True)
    assert len(workers) >= 2
    sockets = []
    seen: set[int] = set()
    for _ in range(8):
        ws, hello = await open_socket(server, unique("bye"))
        sockets.append(ws)
        seen.add(hello["worker"])
        if len(seen) == 2:
            break
    server.process.popen.send_signal(signal.SIGTERM)
    codes = await asyncio.gather(*(asyncio.wait_for(close_code(ws), 20) for ws in sockets))
    assert set(codes) == {1001}
    exit_code = await asyncio.to_thread(server.process.popen.wait, 30)
    assert exit_code == 0
    assert "listening on" in server.ready_line
    _gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive


async def test_unexpected_socket_failure_closes_1011_and_is_counted(platform: Platform) -> None:
    """An error the platform does not expect while admitting a socket (here the user's
    session counter in Redis is no integer) closes it with 1011 and is counted: an
    internal error and a socket closed with 1011, not by its client."""
    user = unique("corrupt")
    settings = platform.settings
    redis = aioredis.Redis.from_url(settings.redis_url)
    try:
        await redis.set(f"{settings.redis_prefix}:session:{user}", "not-a-number")
        async with connect(platform.ws_url, additional_headers=platform.headers(user)) as ws:
            assert await close_code(ws) == 1011
    finally:
        await redis.aclose()
    assert await counter_reaches(platform, INTERNAL_ERRORS, 1) >= 1
    closed = 'squall_target_sockets_closed_total{code="1011"}'
    assert await counter_reaches(platform, closed, 1) >= 1
