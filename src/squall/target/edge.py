"""One worker's edge: the shared objects every socket and request uses, and their lifecycle.

Start order matters: the hub must listen before the runtime may publish, and
shutdown runs in reverse — sockets closed with 1001 first (so clients learn it
is a shutdown, not a crash), then the runtime finishes or refunds its runs,
then the hub and Redis go.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from squall.target import redis_pool
from squall.target.auth import Authenticator
from squall.target.hub import Hub
from squall.target.ids import ThreadID, UserID
from squall.target.limits import RateLimiter
from squall.target.metrics import Counters
from squall.target.runtime import Runtime
from squall.target.sessions import SOCKET_TTL_MS, Sessions
from squall.target.settings import Settings
from squall.target.shared_reads import BatchedRead, SharedRead

if TYPE_CHECKING:
    from squall.target.ws import Connection

log = logging.getLogger("squall.target.edge")

#: How long shutdown waits for sockets to finish their close handshake.
CLOSE_WAIT_S = 3.0

_current: Edge | None = None


class EdgeNotStarted(RuntimeError):
    """The runtime was used before :meth:`Edge.start` finished."""


class Edge:
    """Auth, Redis-backed hub/sessions/limits/metrics, the runtime, and the open sockets."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.auth = Authenticator(settings)
        self.redis: aioredis.Redis = redis_pool.connect(settings, decode_responses=True)
        self.hub = Hub(self.redis, settings)
        self.sessions = Sessions(self.redis, settings)
        self.limiter = RateLimiter(self.redis, settings)
        self.counters = Counters(self.redis, settings.redis_prefix)
        self.connections: set[Connection] = set()
        self.shutting_down = False
        self._runtime: Runtime | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._closed = False
        self._emptied = asyncio.Event()
        #: When this worker started serving (Unix time), for ``/metrics``.
        self.started_at: float | None = None
        # The reads of a resync, shared by the sockets that ask for them at once (see
        # shared_reads): after a pub/sub outage every local socket asks at the same moment.
        self._replays = SharedRead(self._replay)
        self._first_seqs = SharedRead(self._first_seq_of_run)
        self._active_runs = BatchedRead(self._runs_active_since)

    def replay(
        self, user: UserID, thread: ThreadID, after_seq: int, limit: int | None
    ) -> asyncio.Future[list[dict[str, Any]]]:
        """:meth:`Runtime.replay`, one query for the sockets asking for the same page in one
        loop turn (a user's sockets, caught up on a thread after a resync). The user is part
        of what is shared: each user's read checks that user owns the thread."""
        return self._replays((user, thread, after_seq, limit))

    def first_seq_of_run(
        self, user: UserID, thread: ThreadID, run: str
    ) -> asyncio.Future[int | None]:
        """:meth:`Runtime.first_seq_of_run`, shared as :meth:`replay` is."""
        return self._first_seqs((user, thread, run))

    def runs_active_since(
        self, user: UserID, since: float
    ) -> asyncio.Future[list[tuple[ThreadID, str]]]:
        """``user``'s part of :meth:`Runtime.runs_active_since`: one query for all the local
        users whose sockets ask with the same ``since`` in one loop turn (after a resync,
        every local socket asks at once)."""
        return self._active_runs(since, user)

    async def _replay(self, key: tuple[UserID, ThreadID, int, int | None]) -> list[dict[str, Any]]:
        return await self.runtime.replay(*key)

    async def _first_seq_of_run(self, key: tuple[UserID, ThreadID, str]) -> int | None:
        return await self.runtime.first_seq_of_run(*key)

    async def _runs_active_since(
        self, since: float, users: list[UserID]
    ) -> dict[UserID, list[tuple[ThreadID, str]]]:
        return await self.runtime.runs_active_since(users, since)

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise EdgeNotStarted("the runtime is not started yet; await Edge.start() first")
        return self._runtime

    async def start(self) -> None:
        global _current
        # A worker started while Redis restarts (one in place of a dead worker) waits for
        # it, as Runtime.start waits for the database, instead of dying at once.
        await redis_pool.wait_reachable(
            self.redis, "worker start", within_s=self.settings.redis_outage_wait_s
        )
        await self.hub.start()
        self._runtime = await Runtime.start(self.settings, self.hub.publish)
        # Summed over the workers: a dead worker's replacement adds one. Flushed now, not
        # with the next second's deltas: a worker killed within its first second counts.
        self.counters.inc("worker_starts_total")
        await self.counters.flush()
        self.counters.start()
        self.started_at = time.time()
        self._refresher = asyncio.create_task(self._refresh_sockets(), name="squall-sockets-ttl")
        _current = self

    async def drain(self) -> None:
        """Refuse new work, claim no more runs and close every socket with 1001; idempotent."""
        from squall.target.ws import CloseCode

        self.shutting_down = True
        if self._runtime is not None:
            self._runtime.stop_claiming()
        for connection in list(self.connections):
            connection.close(CloseCode.GOING_AWAY, "server shutting down")
        if self.connections:
            self._emptied.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._emptied.wait(), CLOSE_WAIT_S)

    def register(self, connection: Connection) -> None:
        self.connections.add(connection)

    def unregister(self, connection: Connection) -> None:
        self.connections.discard(connection)
        if not self.connections:
            self._emptied.set()

    async def close(self) -> None:
        global _current
        if self._closed:
            return
        self._closed = True
        await self.drain()
        if self._runtime is not None:
            await self._runtime.close(self.settings.shutdown_grace_s)
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        with contextlib.suppress(RedisError, OSError):
            await self.counters.stop()
        await self.hub.stop()
        await self.redis.aclose()
        if _current is self:
            _current = None

    async def _refresh_sockets(self) -> None:
        while True:
            await asyncio.sleep(SOCKET_TTL_MS / 3000)
            try:
                await self.sessions.refresh((c.user_id, c.socket_id) for c in self.connections)
            except (RedisError, OSError) as exc:
                log.warning("could not refresh socket leases: %s", exc)

    def __repr__(self) -> str:
        return (
            f"<Edge sockets={len(self.connections)} shutting_down={self.shutting_down} "
            f"{self.hub!r}>"
        )


async def drain_current() -> None:
    """Close this worker's sockets with 1001 (called by the server before uvicorn's own close)."""
    if _current is not None:
        await _current.drain()
