"""A socket that stops reading is closed as a slow consumer, and its user's other socket
gets every event meanwhile, over real TCP.

The client stops reading (the ``websockets`` client stops reading from its socket once
``max_queue`` frames wait unread); the kernel's buffers fill, then the platform's
transport, then the socket's send queue (``SQUALL_SOCKET_SEND_QUEUE``). The platform then
closes that socket with 1008 rather than hold the run's events for it; the other socket,
on the same worker, never waits for it. The closed socket's client resumes from the last
``seq`` it read and gets the rest.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from edge_client import (
    TIMEOUT_S,
    Platform,
    completed,
    gauge,
    open_socket,
    recv_until,
    time_scale,
    unique,
    user_message,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

pytestmark = pytest.mark.integration

#: One run streams about 8 MB in some 600 events: more than the buffers between the
#: platform and a client that does not read can hold (on loopback the kernel's alone take
#: a few MB).
ANSWER_TOKENS = 1_200_000
CHUNK_TOKENS = 2_000
SEND_QUEUE = 16


async def read_until_closed(ws: ClientConnection) -> tuple[list[dict[str, Any]], ConnectionClosed]:
    """Every frame ``ws`` receives until it closes, and how it closed."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(TIMEOUT_S * time_scale()):
        while True:
            try:
                frames.append(json.loads(await ws.recv()))
            except ConnectionClosed as closed:
                return frames, closed


@pytest.fixture(scope="module")
def platform(platform_factory: Callable[..., Platform]) -> Platform:
    return platform_factory(
        workers=1,
        SQUALL_MODEL_ANSWER_TOKENS=str(ANSWER_TOKENS),
        SQUALL_STREAM_CHUNK_TOKENS=str(CHUNK_TOKENS),
        SQUALL_MODEL_TOKENS_PER_SECOND="100000000",
        SQUALL_SOCKET_SEND_QUEUE=str(SEND_QUEUE),
    )


async def test_a_socket_that_stops_reading_is_closed_and_the_other_gets_every_event(
    platform: Platform,
) -> None:
    user, thread = unique("slow"), unique("t")
    reader, _ = await open_socket(platform, user)
    stalled = await connect(
        platform.ws_url,
        additional_headers={"Authorization": f"Bearer {platform.token(user)}"},
        max_size=None,
        max_queue=1,  # then it stops reading from the socket
    )
    hello = json.loads(await stalled.recv())
    assert hello["type"] == "hello"

    await reader.send(user_message(thread, msg="long"))
    # The reader gets the whole run, in order, while the other socket reads nothing.
    frames = await recv_until(reader, completed(), within=4 * TIMEOUT_S)
    events = [f for f in frames if "seq" in f]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert len(events) > ANSWER_TOKENS // CHUNK_TOKENS

    # The stalled socket now reads: what was buffered, then the platform's close.
    read, closed = await read_until_closed(stalled)
    assert closed.rcvd is not None, "the platform never closed the stalled socket"
    assert closed.rcvd.code == 1008
    assert "slow consumer" in closed.rcvd.reason
    seqs = [f["seq"] for f in read if "seq" in f]
    assert seqs == list(range(1, len(seqs) + 1))  # in order, no gap, nothing twice
    assert len(seqs) < len(events)

    # Resuming from there brings the rest, although the replay is far longer than the
    # send queue: a client that reads is never taken for a slow one.
    again, _ = await open_socket(platform, user)
    await again.send(json.dumps({"type": "resume", "thread_id": thread, "after_seq": len(seqs)}))
    replay = await recv_until(again, lambda f: f.get("type") == "resume_done", 4 * TIMEOUT_S)
    assert [f["seq"] for f in replay if "seq" in f] == list(range(len(seqs) + 1, len(events) + 1))
    assert replay[-1]["last_seq"] == len(events)
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{platform.http}/metrics")).text
    assert gauge(text, "squall_target_slow_consumer_closes_total") >= 1
    await reader.close()
    await again.close()
