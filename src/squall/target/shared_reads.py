"""Reads asked for in the same turn of the event loop, answered by one call.

When a worker's pub/sub comes back after an outage, every local socket catches up at
once (``Connection.resync``): the sockets of one user replay the same threads from the
same ``seq``, and every socket asks for its user's runs since the outage. One query each
is a burst of thousands on a worker holding thousands of sockets, at the moment the
system recovers. Here the reads asked for in one loop turn share their call:

- :class:`SharedRead`: identical reads (the same key) share one call;
- :class:`BatchedRead`: the reads of one group (the same ``since``) go in one call for
  all their keys (users), and each asker gets its own key's answer.

A read is joined only until it starts. A reader needs a read that began after it asked:
a ``resume`` answers with what is stored when it is asked for, and a fill after a resync
must see what was committed while pub/sub was down. A read already sent may have been
answered from an older snapshot, so whoever asks once it has started gets a read of its
own. Waiting one loop turn costs nothing: every socket of a resync asks in the same one.

The shared call runs in a task of its own: an asker that is cancelled (its socket closed)
stops waiting, and the others still get the answer. Every asker gets the same objects
back, which nobody may change.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
G = TypeVar("G", bound=Hashable)
V = TypeVar("V")


class SharedRead(Generic[K, V]):
    """``read(key)``, one call for all the askers of ``key`` in one loop turn."""

    def __init__(self, read: Callable[[K], Awaitable[V]]) -> None:
        self._read = read
        #: Reads asked for and not started yet: the ones a new asker may join.
        self._pending: dict[K, asyncio.Task[V]] = {}
        #: Every read in flight, started or not (the loop keeps only weak references).
        self._running: set[asyncio.Task[V]] = set()

    def __call__(self, key: K) -> asyncio.Future[V]:
        task = self._pending.get(key)
        if task is None:
            task = self._pending[key] = asyncio.create_task(self._start(key))
            self._running.add(task)
            task.add_done_callback(functools.partial(self._done, key))
        # An asker that is cancelled cancels its wait, not the others' read.
        return asyncio.shield(task)

    async def _start(self, key: K) -> V:
        # From here on the read may be sent: later askers need one of their own.
        self._forget(key, asyncio.current_task())
        return await self._read(key)

    def _forget(self, key: K, task: asyncio.Task[Any] | None) -> None:
        if self._pending.get(key) is task:
            del self._pending[key]

    def _done(self, key: K, task: asyncio.Task[V]) -> None:
        self._forget(key, task)  # cancelled before it started
        self._running.discard(task)

    def __repr__(self) -> str:
        return f"<SharedRead pending={len(self._pending)} running={len(self._running)}>"


class BatchedRead(Generic[G, K, V]):
    """``read(group, keys)``, one call for all the keys of ``group`` asked for in one loop
    turn; it answers with a mapping that holds every key it was given."""

    def __init__(self, read: Callable[[G, list[K]], Awaitable[Mapping[K, V]]]) -> None:
        self._read = read
        #: Per group, the askers' futures per key of the batch that has not started yet.
        self._pending: dict[G, dict[K, asyncio.Future[V]]] = {}
        self._running: set[asyncio.Task[None]] = set()

    def __call__(self, group: G, key: K) -> asyncio.Future[V]:
        batch = self._pending.get(group)
        if batch is None:
            batch = self._pending[group] = {}
            task = asyncio.create_task(self._start(group, batch))
            self._running.add(task)
            task.add_done_callback(functools.partial(self._done, group, batch))
        found = batch.get(key)
        if found is None:
            found = batch[key] = asyncio.get_running_loop().create_future()
        return asyncio.shield(found)

    async def _start(self, group: G, batch: dict[K, asyncio.Future[V]]) -> None:
        # From here on the read may be sent: later askers form the next batch.
        self._forget(group, batch)
        try:
            answers = await self._read(group, list(batch))
        except Exception as exc:
            for future in batch.values():
                future.set_exception(exc)
            return
        for key, future in batch.items():
            if key in answers:
                future.set_result(answers[key])
            else:
                future.set_exception(LookupError(f"the read of {group!r} left out {key!r}"))

    def _forget(self, group: G, batch: dict[K, asyncio.Future[V]]) -> None:
        if self._pending.get(group) is batch:
            del self._pending[group]

    def _done(self, group: G, batch: dict[K, asyncio.Future[V]], task: asyncio.Task[None]) -> None:
        self._forget(group, batch)
        self._running.discard(task)
        for future in batch.values():  # cancelled (the loop is closing): nobody is answered
            future.cancel()

    def __repr__(self) -> str:
        return f"<BatchedRead pending={len(self._pending)} running={len(self._running)}>"
