"""The platform's PostgreSQL connection pool, and waiting out a lost connection.

Every worker opens its own pool; ``jsonb`` columns are decoded to Python values on
every connection so stored events come back as exactly the dicts that were published.
A restart, failover or terminated backend closes connections under running work;
:func:`retrying` tries that work again once the server is back, and asks first whether a
write whose connection was lost had committed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Pauses between attempts while it waits: short first, doubling up to the step.
RETRY_FIRST_S = 0.05
RETRY_STEP_S = 1.0

Pool = Any
"""An ``asyncpg.Pool`` (asyncpg ships no type information)."""
Connection = Any
"""An ``asyncpg.Connection``."""


#: The server closed the connection (shutdown, restart, failover, a terminated backend),
#: refused a new one while starting or stopping, or could not be reached: the same work
#: may succeed on a new connection once the server is back. ``InternalClientError`` is
#: what asyncpg raises for a pooled connection handed out between the server's "terminating
#: connection" message and the socket's close ("cannot switch to state 12; another operation
#: (2) is in progress", MagicStack/asyncpg#1069); the close follows at once and the pool then
#: replaces the connection.
_CONNECTION_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)


def connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says the database connection was lost rather than that the work
    itself failed (see :func:`retrying`)."""
    return isinstance(exc, _CONNECTION_LOST)


async def retrying(
    what: str,
    attempt: Callable[[], Awaitable[T]],
    *,
    committed: Callable[[], Awaitable[T | None]] | None = None,
    within_s: float,
) -> T:
    """``attempt()``, tried again while the database connection is lost, for ``within_s``.

    A connection lost during a write leaves it unknown whether the write committed;
    ``committed()`` then answers first (its result, or None to try again), so a write
    that did commit is not made twice. The last error is raised once ``within_s`` has
    passed. ``what`` names the work in the one warning logged per outage.
    """
    deadline = time.monotonic() + within_s
    pause = RETRY_FIRST_S
    lost: BaseException | None = None
    while True:
        try:
            if lost is not None and committed is not None:
                found = await committed()
                if found is not None:
                    log.warning("%s: the database is back (it had committed)", what)
                    return found
            result = await attempt()
        except Exception as exc:
            if not connection_lost(exc) or time.monotonic() + pause > deadline:
                raise
            if lost is None:
                log.warning("%s waits for the database: %s", what, describe(exc))
            lost = exc
            await asyncio.sleep(pause)
            pause = min(RETRY_STEP_S, pause * 2)
            continue
        if lost is not None:
            log.warning("%s: the database is back", what)
        return result


def describe(exc: BaseException) -> str:
    """``exc`` in one line: its type and message."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class _LostConnectionInOneLine(logging.Filter):
    """asyncpg's pool logs each failed attempt to reopen its minimum of connections with a
    traceback; while the server is down that is one traceback a second. This folds a lost
    connection into the record's one line (other errors keep their traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and connection_lost(exc):
            record.msg, record.args = f"{record.getMessage()}: {describe(exc)}", None
            record.exc_info = None
        return True


_ONE_LINE = _LostConnectionInOneLine()


async def _init_connection(conn: Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: Connection) -> None:
    """Release without asyncpg's default reset query.

    The default runs ``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``
    on every release: one more round trip for every pooled query. The platform never
    changes session state (no ``SET``, ``LISTEN``, session advisory locks or open
    cursors), so there is nothing to reset; asyncpg still rolls back a transaction left
    open (e.g. by a cancelled run) before calling this.
    """


def pool_size(run_concurrency: int) -> int:
    """Connections one worker needs: a run holds one only for one statement or a short
    transaction, so half its slots plus room for submits and reads is enough."""
    return max(4, min(32, run_concurrency // 2 + 8))


async def create_pool(url: str, *, max_size: int = 10) -> Pool:
    """Open a pool on ``url`` with the ``jsonb`` codec installed on every connection."""
    logging.getLogger("asyncpg.pool").addFilter(_ONE_LINE)
    return await asyncpg.create_pool(
        url,
        min_size=1,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        command_timeout=30,
    )


async def connect(url: str) -> Connection:
    """One connection with the same ``jsonb`` codec as the pool's (scripts, tests, tools)."""
    conn = await asyncpg.connect(url)
    await _init_connection(conn)
    return conn
