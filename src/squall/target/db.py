"""The platform's PostgreSQL connection pool, and waiting out a lost connection.

Every worker opens its own pool; ``jsonb`` columns are decoded to Python values on
every connection so stored events come back as exactly the dicts that were published.
A restart, failover or terminated backend closes connections under running work;
:func:`retrying` tries that work again once the server is back, and asks first whether a
write whose connection was lost had committed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from squall.target import outage

T = TypeVar("T")

Pool = Any
"""An ``asyncpg.Pool`` (asyncpg ships no type information)."""
Connection = Any
"""An ``asyncpg.Connection``."""


#: The server closed the connection (shutdown, restart, failover, a terminated backend),
#: refused a new one while starting, stopping or full, or could not be reached: the same work
#: may succeed on a new connection once the server is back. ``InternalClientError`` is
#: what asyncpg raises for a pooled connection handed out between the server's "terminating
#: connection" message and the socket's close ("cannot switch to state 12; another operation
#: (2) is in progress", MagicStack/asyncpg#1069); the close follows at once and the pool then
#: replaces the connection. ``TooManyConnectionsError`` is a new connection refused because
#: the server (``max_connections``: "sorry, too many clients already"), the role or the
#: database is full: other clients of a shared server come and go, so the same work
#: succeeds once one of them disconnects (a run failing at once would fail every run in
#: flight while another platform on the server holds its connections).
_CONNECTION_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.TooManyConnectionsError,
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
    """``attempt()``, tried again while the database connection is lost, for ``within_s``
    (:func:`squall.target.outage.retrying`; ``committed()`` answers first whether a write
    whose connection was lost had committed)."""
    return await outage.retrying(
        what,
        attempt,
        server="the database",
        lost=connection_lost,
        committed=committed,
        within_s=within_s,
    )


class _LostConnectionInOneLine(logging.Filter):
    """asyncpg's pool logs each failed attempt to reopen its minimum of connections with a
    traceback; while the server is down that is one traceback a second. This folds a lost
    connection into the record's one line (other errors keep their traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and connection_lost(exc):
            record.msg, record.args = f"{record.getMessage()}: {outage.describe(exc)}", None
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
