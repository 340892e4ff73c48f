"""A pub/sub connection that goes silent without closing (a half-open connection after a
network partition, a NAT or firewall dropping its state): the hub pings a quiet connection,
drops it when nothing answers within ``SQUALL_REDIS_COMMAND_TIMEOUT_S``, and once it is back
every local socket resyncs. A loopback proxy between the hub and a Redis of the test's own
stands in for the network: it black-holes (keeps every connection open and forwards
nothing, new connections included) and resumes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis.asyncio as aioredis
from edge_client import time_scale

from squall.services.embedded import EmbeddedValkey
from squall.target.hub import IN_FLIGHT_MARGIN_S, QUIET_S, Hub
from squall.target.ids import UserID
from squall.target.settings import Settings

pytestmark = pytest.mark.integration

#: The hub's timeout for an answer to its PING (and for a new connection).
TIMEOUT_S = 0.5
#: The same where a PING must never time out: margin for a busy host.
HEALTHY_TIMEOUT_S = 3.0


@dataclass(eq=False)
class Link:
    """One proxied connection: it forwards until the proxy black-holes."""

    forwarding: bool


class Proxy:
    """A loopback TCP proxy to ``127.0.0.1:upstream`` that can black-hole and resume.

    Black-holed, it keeps every connection open and forwards nothing in either direction;
    a connection made meanwhile is taken and held silent too. Resumed, new connections
    forward again (held ones stay silent: their client gives them up)."""

    def __init__(self, upstream: int) -> None:
        self._upstream = upstream
        self._forwarding = True
        self._links: list[Link] = []
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0
        #: Bytes forwarded toward the server.
        self.forwarded = 0
        #: Connections taken, and set each time a client closes one.
        self.accepted = 0
        self.client_closed = asyncio.Event()

    async def __aenter__(self) -> Proxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for writer in self._writers:
            writer.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def black_hole(self) -> None:
        self._forwarding = False
        for link in self._links:
            link.forwarding = False

    def resume(self) -> None:
        self._forwarding = True

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.append(writer)
        self.accepted += 1
        link = Link(self._forwarding)
        self._links.append(link)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream)
            self._writers.append(up_writer)
            await asyncio.gather(
                self._pump(link, reader, up_writer, toward_server=True),
                self._pump(link, up_reader, writer, toward_server=False),
            )
        finally:
            self._tasks.discard(task)

    async def _pump(
        self,
        link: Link,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        *,
        toward_server: bool,
    ) -> None:
        """Copy ``source`` to ``sink`` (dropping what arrives while black-holed) until
        ``source`` ends, then close ``sink``."""
        with contextlib.suppress(OSError):
            while data := await source.read(65536):
                if link.forwarding:
                    sink.write(data)
                    await sink.drain()
                    self.forwarded += len(data) if toward_server else 0
        if toward_server:
            self.client_closed.set()
        sink.close()


@dataclass(eq=False)
class Member:
    """A local socket as the hub sees it: it records what it is given."""

    user: str
    seqs: list[int] = field(default_factory=list)
    since: list[float] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def user_id(self) -> UserID:
        return UserID(self.user)

    @property
    def session(self) -> int | None:
        return None

    def deliver(self, event: dict[str, Any]) -> None:
        self.seqs.append(event["seq"])
        self.changed.set()

    def kick(self, generation: int) -> None:
        raise AssertionError(f"no kick expected, got generation {generation}")

    def resync(self, since: float) -> None:
        self.since.append(since)
        self.changed.set()

    async def delivered(self, seq: int, within: float = 10.0) -> None:
        async with asyncio.timeout(within * time_scale()):
            while seq not in self.seqs:
                self.changed.clear()
                await self.changed.wait()


def event(seq: int) -> dict[str, Any]:
    return {"type": "agent_thinking", "thread_id": "t", "run_id": "r", "seq": seq, "ts": 1.0}


@pytest.fixture
async def proxy(redis_server: EmbeddedValkey) -> AsyncIterator[Proxy]:
    async with Proxy(redis_server.port) as started:
        yield started


@pytest.fixture
async def hub(
    redis_server: EmbeddedValkey, proxy: Proxy, request: pytest.FixtureRequest
) -> AsyncIterator[Hub]:
    """A hub listening through ``proxy``; it publishes straight to the server. Its command
    timeout is :data:`TIMEOUT_S`, or the test's indirect parameter."""
    settings = Settings(
        redis_url=f"redis://127.0.0.1:{proxy.port}/0",
        redis_prefix=f"silence-{uuid.uuid4().hex[:10]}",
        redis_command_timeout_s=getattr(request, "param", TIMEOUT_S),
    )
    direct = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    one = Hub(direct, settings)
    await one.start()
    yield one
    await one.stop()
    await direct.aclose()


def silent_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "squall.target.hub" and "silent" in r.getMessage()
    ]


async def test_a_silent_connection_is_dropped_and_every_socket_resyncs_once_it_is_back(
    hub: Hub, proxy: Proxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "squall.target.hub")
    ann = Member("ann")
    await hub.attach(ann)
    await hub.publish(ann.user_id, event(1))
    await ann.delivered(1)
    proxy.client_closed.clear()
    accepted = proxy.accepted
    proxy.black_hole()
    black_holed_at, started = time.time(), time.monotonic()
    await hub.publish(ann.user_id, event(2))  # Redis takes it; the hub never hears of it
    # Noticed: the hub drops its connection within a PING interval and the timeout.
    async with asyncio.timeout((QUIET_S + TIMEOUT_S + 1.5) * time_scale()):
        await proxy.client_closed.wait()
    assert time.monotonic() - started >= TIMEOUT_S
    # Still silent: reconnects (each one a connection the proxy holds) give up after the
    # timeout and are tried again, with one warning in all and no resync.
    async with asyncio.timeout(15 * time_scale()):
        while proxy.accepted - accepted < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert ann.since == []
    assert hub.resyncs == 0
    proxy.resume()
    async with asyncio.timeout(10 * time_scale()):
        while not ann.since:
            ann.changed.clear()
            await ann.changed.wait()
    assert hub.resyncs == 1
    (since,) = ann.since
    # From a margin before the last message heard (a pong at most one interval earlier).
    assert black_holed_at - IN_FLIGHT_MARGIN_S - QUIET_S - 1.0 <= since
    assert since <= black_holed_at - IN_FLIGHT_MARGIN_S
    (warning,) = silent_warnings(caplog)
    assert "SQUALL_REDIS_COMMAND_TIMEOUT_S" in warning
    # Subscribed again: live delivery goes on.
    await hub.publish(ann.user_id, event(3))
    await ann.delivered(3)
    assert ann.seqs == [1, 3]  # 2 was lost to pub/sub: the resync replays it from storage


@pytest.mark.parametrize("hub", [HEALTHY_TIMEOUT_S], indirect=True, ids=["timeout-3s"])
async def test_an_idle_healthy_connection_is_pinged_and_never_flagged(
    hub: Hub, proxy: Proxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "squall.target.hub")
    bob = Member("bob")
    await hub.attach(bob)
    forwarded, accepted = proxy.forwarded, proxy.accepted
    await asyncio.sleep(5 * QUIET_S)  # many times the PING timeout, nothing published
    assert proxy.forwarded > forwarded  # it pinged, and the pongs kept it alive
    assert (proxy.accepted, hub.resyncs, bob.since) == (accepted, 0, [])
    assert silent_warnings(caplog) == []
    await hub.publish(bob.user_id, event(1))
    await bob.delivered(1)
