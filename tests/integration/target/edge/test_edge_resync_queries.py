"""A resync after a pub/sub outage asks PostgreSQL once per user and thread, not per socket.

One worker's edge in this process (its hub on the real Redis, its runtime on a database
of the test's own), with 50 users of 4 sockets each on in-process ASGI channels. Every
user has a thread all their sockets saw to its end, and a thread whose run is executing
but whose events so far were not published (their PUBLISH failed): only the resync's
look at the user's runs can bring those. The hub's pub/sub connection is then killed
(what a Redis restart does to it); once it is back every socket resyncs, and the calls
the edge makes to the runtime are counted. The sockets of one user ask the same reads at
the same moment, so they share them; before, every socket asked on its own.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis.asyncio as aioredis

from asgi_sockets import AsgiSocket
from squall.target.auth import Principal, Role
from squall.target.edge import Edge
from squall.target.errors import NotFound
from squall.target.ids import ThreadID, UserID
from squall.target.redis_pool import client_name
from squall.target.runtime import Runtime
from squall.target.settings import Settings
from squall.target.ws import Connection

pytestmark = pytest.mark.integration

USERS = 50
SOCKETS = 4
WAIT_S = 30.0


class CountingRuntime(Runtime):
    """The runtime, counting the calls the edge makes to its reads."""

    calls: Counter[str]

    async def replay(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        self.calls["replay"] += 1
        return await super().replay(*args, **kwargs)

    async def first_seq_of_run(self, *args: Any, **kwargs: Any) -> int | None:
        self.calls["first_seq_of_run"] += 1
        return await super().first_seq_of_run(*args, **kwargs)

    async def runs_active_since(self, *args: Any, **kwargs: Any) -> Any:
        self.calls["runs_active_since"] += 1
        return await super().runs_active_since(*args, **kwargs)


@dataclass
class Publisher:
    """The runtime's ``publish``: through the edge's hub, except while ``failing`` (the
    PUBLISH fails, as while Redis is away: the event is stored, its delivery lost)."""

    hub_publish: Callable[[UserID, dict[str, Any]], Any] | None = None
    failing: bool = False
    lost: list[dict[str, Any]] = field(default_factory=list)

    async def publish(self, user: UserID, event: dict[str, Any]) -> None:
        if self.failing:
            self.lost.append(event)
            return
        assert self.hub_publish is not None
        await self.hub_publish(user, event)


class Gate:
    """The model's sleeper: runs wait in it while the gate is closed."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.open.set()
        self.waiting = 0

    async def sleep(self, seconds: float) -> None:
        self.waiting += 1
        try:
            await self.open.wait()
        finally:
            self.waiting -= 1


@dataclass
class Worker:
    edge: Edge
    runtime: CountingRuntime
    publisher: Publisher
    gate: Gate


@pytest.fixture
async def worker(fresh_db: str, redis_url: str) -> AsyncIterator[Worker]:
    """An edge's hub and runtime, started as ``Edge.start`` starts them; the runtime's
    model is gated and its publishing can fail, as the test decides."""
    settings = Settings(
        database_url=fresh_db,
        redis_url=redis_url,
        redis_prefix=f"resync{secrets.token_hex(4)}",
        model_ttft_ms=1,  # the one pause of a run: where the gate holds it
        model_tokens_per_second=0,
        model_answer_tokens=8,
        stream_chunk_tokens=4,
        run_concurrency=USERS + 8,
        max_sockets_per_user=SOCKETS,
    )
    edge = Edge(settings)
    publisher, gate = Publisher(edge.hub.publish), Gate()
    await edge.hub.start()
    runtime = await CountingRuntime.start(
        settings, publisher.publish, sleeper=gate.sleep, poll_s=0.1
    )
    runtime.calls = Counter()
    edge._runtime = runtime
    try:
        yield Worker(edge, runtime, publisher, gate)
    finally:
        gate.open.set()
        await edge.close()


async def open_socket(edge: Edge, user: str) -> tuple[Connection, AsgiSocket, asyncio.Task[None]]:
    """Admit a socket as the endpoint does: attached to the hub, then greeted."""
    client = AsgiSocket()
    websocket = await client.accept()
    connection = Connection(websocket, edge, Principal(UserID(user), Role.USER))
    edge.register(connection)
    await edge.hub.attach(connection)
    connection.greet({"type": "hello", "socket_id": connection.socket_id})
    return connection, client, asyncio.create_task(connection.run())


async def test_a_resync_shares_its_reads_among_the_sockets_of_a_user(worker: Worker) -> None:
    edge, runtime = worker.edge, worker.runtime
    users = [f"u{i}" for i in range(USERS)]
    seen = {user: ThreadID(f"seen-{user}") for user in users}
    unseen = {user: ThreadID(f"unseen-{user}") for user in users}
    sockets = {user: [await open_socket(edge, user) for _ in range(SOCKETS)] for user in users}
    try:
        # A thread every socket sees to its end, live.
        for user in users:
            await runtime.submit(UserID(user), seen[user], "hello", f"m-{user}")
        for user in users:
            for _, client, _ in sockets[user]:
                await client.wait_for(lambda c=client, u=user: _completed(c, seen[u]), WAIT_S)
        # A run the sockets see nothing of: its events so far fail to publish, then it
        # waits in the model.
        worker.gate.open.clear()
        worker.publisher.failing = True
        for user in users:
            await runtime.submit(UserID(user), unseen[user], "again", f"n-{user}")
        await until(lambda: worker.gate.waiting == USERS, "every run waits in the model")
        stored = {user: await runtime.replay(UserID(user), unseen[user], 0) for user in users}
        assert all(stored.values()), "every waiting run stored its agent_started"
        runtime.calls.clear()

        # Pub/sub drops; once it is back, every socket resyncs.
        async with aioredis.Redis.from_url(edge.settings.redis_url) as admin:
            name = client_name(edge.settings, "hub")
            ids = [c["id"] for c in await admin.client_list() if c.get("name") == name]
            assert len(ids) == 1
            await admin.client_kill_filter(_id=ids[0])
        for user in users:
            want = [e["seq"] for e in stored[user]]
            for _, client, _ in sockets[user]:
                await client.wait_for(
                    lambda c=client, u=user, w=want: _seqs(c, unseen[u]) == w, WAIT_S
                )
        connections = [c for user in users for c, _, _ in sockets[user]]
        await until(lambda: all(c._tasks is None for c in connections), "every fill ended")
        calls = dict(runtime.calls)
        assert edge.hub.resyncs == 1
        # Per user: one gap fill of the seen thread, one look-up of where the unseen
        # thread's run began and one replay of it; one look-up of the runs for everyone.
        # Each socket on its own asked 4 times as many, and one look-up per user.
        assert calls.get("runs_active_since") == 1, calls
        assert calls.get("first_seq_of_run", 0) <= USERS, calls
        assert calls.get("replay", 0) <= 2 * USERS, calls

        # The runs go on, published again: every socket gets each thread whole, once.
        worker.publisher.failing = False
        worker.gate.open.set()
        for user in users:
            for _, client, _ in sockets[user]:
                await client.wait_for(lambda c=client, u=user: _completed(c, unseen[u]), WAIT_S)
    finally:
        for user in users:
            for connection, client, task in sockets[user]:
                client.hang_up.set()
                await asyncio.wait_for(task, WAIT_S)
                edge.hub.detach(connection)
                edge.unregister(connection)
    for user in users:
        for _, client, _ in sockets[user]:
            for thread in (seen[user], unseen[user]):
                seqs = _seqs(client, thread)
                assert seqs == list(range(1, len(seqs) + 1)), (user, thread, seqs)


async def test_sockets_of_two_users_never_share_a_replay(worker: Worker) -> None:
    """Asked in the same turn for the same thread from the same seq, the owner's sockets
    share its events and the other user gets ``not_found``: the owner check stays each
    user's own."""
    edge, runtime = worker.edge, worker.runtime
    alice, bob, thread = UserID("alice"), UserID("bob"), ThreadID("alices")
    worker.publisher.failing = True  # nobody listens; the events are stored all the same
    await runtime.submit(alice, thread, "hello", "m1")
    await until(
        lambda: any(e["type"] == "agent_completed" for e in worker.publisher.lost), "the run ends"
    )
    runtime.calls.clear()
    mine, again, theirs = await asyncio.gather(
        edge.replay(alice, thread, 0, 10),
        edge.replay(alice, thread, 0, 10),
        edge.replay(bob, thread, 0, 10),
        return_exceptions=True,
    )
    assert isinstance(theirs, NotFound), theirs
    assert isinstance(mine, list)
    assert [e["seq"] for e in mine] == list(range(1, len(mine) + 1))
    assert again == mine
    assert runtime.calls["replay"] == 2  # alice's two asks shared one, bob's was his own


async def until(done: Callable[[], bool], what: str) -> None:
    """Wait, polling, for ``done()``; at most ``WAIT_S``."""
    for _ in range(int(WAIT_S / 0.02)):
        if done():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {WAIT_S} s: {what}")


def _seqs(client: AsgiSocket, thread: str) -> list[int]:
    return [f["seq"] for f in client.frames if f.get("thread_id") == thread and "seq" in f]


def _completed(client: AsgiSocket, thread: str) -> bool:
    return any(
        f["type"] == "agent_completed" for f in client.frames if f.get("thread_id") == thread
    )
