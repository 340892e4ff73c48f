"""An idle socket holds no writer task and no outbound queue; they come and go with frames.

Driven over an in-process ASGI socket (``asgi_sockets``; no Redis or PostgreSQL is
contacted), so the order of frames and the writer's lifetime are observed exactly.
"""

from __future__ import annotations

import asyncio

import pytest
from test_ws_greeting import WAIT_S, event, open_connection

from asgi_sockets import AsgiSocket
from squall.target.ws import REPLAY_PAGE, CloseCode, Connection, State, replay_page


async def drained(connection: Connection, channel: AsgiSocket, count: int) -> None:
    """Wait until ``count`` messages were sent and the writer has ended."""
    await channel.wait_for(lambda: len(channel.sent) >= count, WAIT_S)
    for _ in range(100):  # the writer ends within a few loop steps of its last send
        if not connection.writing:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"writer still alive after its last frame: {connection!r}")


async def test_writer_exists_only_while_frames_wait() -> None:
    channel = AsgiSocket()
    connection, edge = await open_connection(channel)
    try:
        assert not connection.writing
        connection.greet({"type": "hello"})
        assert connection.writing
        assert connection.queued() == 1
        await drained(connection, channel, 2)  # accept + hello
        assert (connection.writing, connection.queued()) == (False, 0)
        for seq in (1, 2, 3):
            connection.deliver(event(seq))
        assert connection.queued() == 3
        await drained(connection, channel, 5)
        assert [f.get("seq") for f in channel.frames] == [None, 1, 2, 3]
        assert (connection.writing, connection.queued()) == (False, 0)
        assert "writing=False" in repr(connection)
    finally:
        await edge.redis.aclose()


async def test_close_drops_waiting_frames_and_sends_the_close() -> None:
    channel = AsgiSocket()
    connection, edge = await open_connection(channel)
    try:
        connection.greet({"type": "hello"})
        connection.deliver(event(1))
        connection.close(CloseCode.GOING_AWAY, "server shutting down")
        assert connection.queued() == 1  # only the close is left
        await drained(connection, channel, 2)
        assert channel.sent[-1] == {
            "type": "websocket.close",
            "code": 1001,
            "reason": "server shutting down",
        }
        assert connection.state is State.CLOSING
        connection.deliver(event(2))
        assert (connection.writing, connection.queued()) == (False, 0)
    finally:
        await edge.redis.aclose()


async def test_slow_consumer_closes_when_the_queue_is_full() -> None:
    channel = AsgiSocket()
    connection, edge = await open_connection(channel)
    try:
        connection._capacity = 2
        connection.greet({"type": "hello"})
        connection.deliver(event(1))
        connection.deliver(event(2))  # queue full: hello + 1 wait
        assert connection.state is State.CLOSING
        assert connection.close_code is CloseCode.POLICY_VIOLATION
        await drained(connection, channel, 2)
        assert channel.sent[-1]["type"] == "websocket.close"
        assert channel.sent[-1]["code"] == 1008
    finally:
        await edge.redis.aclose()


@pytest.mark.parametrize(
    ("capacity", "page"), [(1000, 250), (4000, REPLAY_PAGE), (16, 4), (3, 1), (1, 1)]
)
def test_a_replay_page_is_a_quarter_of_the_send_queue_at_most(capacity: int, page: int) -> None:
    # Queued onto a queue at most half full, a page leaves a quarter for live events.
    assert replay_page(capacity) == page
