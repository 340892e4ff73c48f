"""The platform's PostgreSQL connection pool.

Every worker opens its own pool; ``jsonb`` columns are decoded to Python values on
every connection so stored events come back as exactly the dicts that were published.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

Pool = Any
"""An ``asyncpg.Pool`` (asyncpg ships no type information)."""
Connection = Any
"""An ``asyncpg.Connection``."""


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
