"""Waiting out a lost connection to PostgreSQL or Redis.

A restart, failover or terminated connection fails the work in flight, and the same
work may succeed once the server is back. :func:`retrying` tries it again with short,
doubling pauses for a bounded time. ``db.retrying`` is this for the database (and asks
first whether a write whose connection was lost had committed); a worker starting also
waits out Redis with it.

An outage is logged once per process, however many tasks wait it out (after a pub/sub
reconnect during a database outage every socket's gap fill waits): one warning when the
first starts waiting, naming its work, and one when the last of those waiting gets through,
with how many waited (:class:`Outages`); the other waits log at debug level.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Pauses between attempts while it waits: short first, doubling up to the step.
RETRY_FIRST_S = 0.05
RETRY_STEP_S = 1.0


def next_pause(pause: float) -> float:
    """The pause after ``pause`` (0: none yet): :data:`RETRY_FIRST_S`, doubling up to
    :data:`RETRY_STEP_S`."""
    return min(RETRY_STEP_S, max(RETRY_FIRST_S, pause * 2))


class Outages:
    """The tasks of this process waiting for each server, to log each outage once."""

    def __init__(self) -> None:
        #: Per server: tasks waiting now, and tasks that waited since the first began.
        self._waiting: dict[str, list[int]] = {}

    def began(self, server: str, what: str, exc: BaseException) -> None:
        """A task began waiting for ``server``: only the first of an outage warns."""
        counts = self._waiting.setdefault(server, [0, 0])
        first = counts[0] == 0
        counts[0] += 1
        counts[1] += 1
        log.log(
            logging.WARNING if first else logging.DEBUG,
            "%s waits for %s: %s",
            what,
            server,
            describe(exc),
        )

    def ended(self, server: str, what: str, *, through: bool, note: str = "") -> None:
        """A task stopped waiting for ``server``, getting ``through`` or giving up; the last
        one to get through says the server is back."""
        counts = self._waiting.get(server)
        if counts is None:
            return
        counts[0] -= 1
        last = counts[0] == 0
        waited = counts[1]
        if last:
            del self._waiting[server]
        if not through:
            return
        others = f"; {waited} tasks here waited for it" if last and waited > 1 else ""
        log.log(
            logging.WARNING if last else logging.DEBUG,
            "%s: %s is back%s%s",
            what,
            server,
            note,
            others,
        )

    def waiting(self, server: str) -> int:
        """How many tasks wait for ``server`` now."""
        return self._waiting.get(server, [0])[0]


#: This process's outages (a platform worker is one process with one event loop).
OUTAGES = Outages()


async def retrying(
    what: str,
    attempt: Callable[[], Awaitable[T]],
    *,
    server: str,
    lost: Callable[[BaseException], bool],
    committed: Callable[[], Awaitable[T | None]] | None = None,
    within_s: float,
) -> T:
    """``attempt()``, tried again for ``within_s`` while its errors say the connection to
    ``server`` (as the log names it: "the database", "Redis") was ``lost``.

    A connection lost during a write leaves it unknown whether the write committed;
    ``committed()`` then answers first (its result, or None to try again), so a write
    that did commit is not made twice. Any other error, or the last one once ``within_s``
    has passed, is raised. ``what`` names the work in the log (see :class:`Outages`).
    """
    deadline = time.monotonic() + within_s
    pause = RETRY_FIRST_S
    failed: BaseException | None = None
    through = False
    note = ""
    try:
        while True:
            try:
                if failed is not None and committed is not None:
                    found = await committed()
                    if found is not None:
                        through, note = True, " (it had committed)"
                        return found
                result = await attempt()
            except Exception as exc:
                if not lost(exc) or time.monotonic() + pause > deadline:
                    raise
                if failed is None:
                    OUTAGES.began(server, what, exc)
                failed = exc
                await asyncio.sleep(pause)
                pause = next_pause(pause)
                continue
            through = True
            return result
    finally:
        if failed is not None:
            OUTAGES.ended(server, what, through=through, note=note)


def describe(exc: BaseException) -> str:
    """``exc`` in one line: its type and message."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
