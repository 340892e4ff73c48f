"""Replays of several threads at once share one send queue without filling it.

A resync after a pub/sub reconnect starts a fill for every thread a socket has seen,
all at once (resumes sent together do the same). Driven over an in-process ASGI
socket (``asgi_sockets``) with a client that reads only when the test lets it, and
a stand-in for the runtime's ``replay`` (the stored events; no PostgreSQL is contacted)
whose pages come back only when the test releases them: every interleaving is chosen
here, not left to timing.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import MutableMapping
from typing import Any

from asgi_sockets import AsgiSocket
from squall.target.auth import Principal, Role
from squall.target.edge import Edge
from squall.target.ids import ThreadID, UserID
from squall.target.settings import Settings
from squall.target.ws import Connection, State, replay_page

QUEUE = 16
THREADS = ("a", "b", "c")
EVENTS_PER_THREAD = 40


class SlowClient(AsgiSocket):
    """A client whose reads the test doles out: each frame after ``hello`` waits for a
    permit, so frames pile up in the connection's send queue meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.permits = asyncio.Semaphore(0)

    async def send(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "websocket.send" and len(self.frames) >= 1:
            await self.permits.acquire()
        await super().send(message)


class StoredEvents:
    """``runtime.replay`` over events held here, answering on the next loop step (as a
    query does, later): fills of other threads run meanwhile."""

    async def replay(
        self, user: UserID, thread: ThreadID, after_seq: int, limit: int | None = None
    ) -> list[dict[str, Any]]:
        await asyncio.sleep(0)
        last = min(EVENTS_PER_THREAD, after_seq + (limit or EVENTS_PER_THREAD))
        return [
            {"type": "agent_thinking", "thread_id": thread, "run_id": "r", "seq": seq}
            for seq in range(after_seq + 1, last + 1)
        ]


async def settle() -> None:
    """Let every task run until each waits for the client or for room."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_fills_of_three_threads_at_once_keep_room_for_live_events() -> None:
    client = SlowClient()
    websocket = await client.accept()
    edge = Edge(dataclasses.replace(Settings(), socket_send_queue=QUEUE))
    edge._runtime = StoredEvents()  # type: ignore[assignment]  # only replay is used here
    connection = Connection(websocket, edge, Principal(UserID("alice"), Role.USER))
    # hello, then each thread's events and its resume_done
    expected = 1 + len(THREADS) * (EVENTS_PER_THREAD + 1)
    most = 0
    try:
        connection.greet({"type": "hello", "socket_id": connection.socket_id})
        for thread in THREADS:
            connection._spawn(connection._fill(ThreadID(thread), 0, resume=True))
        await settle()
        # The client reads one frame at a time; every fill gets its turn in between.
        for _ in range(expected * 4):  # bounded: one frame per step when all is well
            if len(client.frames) >= expected:
                break
            assert connection.state is State.OPEN, (
                f"closed as a slow consumer after {len(client.frames)} frames, "
                f"the queue at {connection.queued()}"
            )
            most = max(most, connection.queued())
            client.permits.release()
            await settle()
    finally:
        for _ in range(expected):
            client.permits.release()
        await edge.redis.aclose()
    assert len(client.frames) == expected, f"{len(client.frames)} of {expected} frames sent"
    # A page goes only into a queue at most half full.
    assert most <= QUEUE // 2 + replay_page(QUEUE) + 1  # + a resume_done
    frames = client.frames
    for thread in THREADS:
        seqs = [f["seq"] for f in frames if f.get("thread_id") == thread and "seq" in f]
        assert seqs == list(range(1, EVENTS_PER_THREAD + 1))
