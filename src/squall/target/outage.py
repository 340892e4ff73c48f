"""Waiting out a lost connection to PostgreSQL or Redis.

A restart, failover or terminated connection fails the work in flight, and the same
work may succeed once the server is back. :func:`retrying` tries it again with short,
doubling pauses for a bounded time, logging one warning when it starts waiting and one
when the server is back. ``db.retrying`` is this for the database (and asks first
whether a write whose connection was lost had committed); a worker starting also waits
out Redis with it.
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
    has passed, is raised. ``what`` names the work in the one warning logged per outage.
    """
    deadline = time.monotonic() + within_s
    pause = RETRY_FIRST_S
    failed: BaseException | None = None
    while True:
        try:
            if failed is not None and committed is not None:
                found = await committed()
                if found is not None:
                    log.warning("%s: %s is back (it had committed)", what, server)
                    return found
            result = await attempt()
        except Exception as exc:
            if not lost(exc) or time.monotonic() + pause > deadline:
                raise
            if failed is None:
                log.warning("%s waits for %s: %s", what, server, describe(exc))
            failed = exc
            await asyncio.sleep(pause)
            pause = next_pause(pause)
            continue
        if failed is not None:
            log.warning("%s: %s is back", what, server)
        return result


def describe(exc: BaseException) -> str:
    """``exc`` in one line: its type and message."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
