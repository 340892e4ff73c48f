"""``hello`` is a socket's first frame, even when the hub dispatches an event before it.

The hub's reader can confirm a subscription and dispatch the next pub/sub message in one
step, before the endpoint resumes to send ``hello``. The connection is driven here over
an in-process ASGI channel (no Redis or PostgreSQL is contacted) in exactly that order.
"""

from __future__ import annotations

import asyncio
from typing import Any

from asgi_sockets import AsgiSocket
from squall.target.auth import Principal, Role
from squall.target.edge import Edge
from squall.target.ids import UserID
from squall.target.settings import Settings
from squall.target.ws import CloseCode, Connection, State

WAIT_S = 5.0


async def open_connection(channel: AsgiSocket) -> tuple[Connection, Edge]:
    websocket = await channel.accept()
    edge = Edge(Settings())
    return Connection(websocket, edge, Principal(UserID("alice"), Role.USER)), edge


def event(seq: int) -> dict[str, Any]:
    return {"type": "agent_thinking", "thread_id": "t", "run_id": "r", "seq": seq, "text": "x"}


async def serve(connection: Connection, channel: AsgiSocket, messages: int) -> None:
    task = asyncio.create_task(connection.run())
    try:
        await channel.wait_for(lambda: len(channel.sent) >= messages, WAIT_S)
    finally:
        channel.hang_up.set()
        await asyncio.wait_for(task, WAIT_S)


async def test_an_event_dispatched_before_hello_is_sent_after_it() -> None:
    channel = AsgiSocket()
    connection, edge = await open_connection(channel)
    try:
        connection.deliver(event(4))  # the hub, right after Redis confirmed the subscription
        assert connection.state is State.GREETING
        connection.greet({"type": "hello", "socket_id": connection.socket_id})
        connection.deliver(event(5))
        await serve(connection, channel, messages=4)  # accept, hello, 4, 5
    finally:
        await edge.redis.aclose()
    assert [(f["type"], f.get("seq")) for f in channel.frames] == [
        ("hello", None),
        ("agent_thinking", 4),
        ("agent_thinking", 5),
    ]


async def test_a_socket_closed_before_its_hello_never_greets() -> None:
    channel = AsgiSocket()
    connection, edge = await open_connection(channel)
    try:
        connection.deliver(event(1))
        connection.kick(7)  # a newer session was announced during admission
        connection.greet({"type": "hello", "socket_id": connection.socket_id})
        await serve(connection, channel, messages=2)  # accept, close
    finally:
        await edge.redis.aclose()
    assert channel.frames == []
    assert channel.sent[-1]["type"] == "websocket.close"
    assert channel.sent[-1]["code"] == CloseCode.REPLACED
