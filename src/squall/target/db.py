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


def pool_size(run_concurrency: int) -> int:
    """Connections one worker needs: a run holds one only inside a short transaction."""
    return max(4, min(20, run_concurrency + 4))


async def create_pool(url: str, *, max_size: int = 10) -> Pool:
    """Open a pool on ``url`` with the ``jsonb`` codec installed on every connection."""
    return await asyncpg.create_pool(
        url, min_size=1, max_size=max_size, init=_init_connection, command_timeout=30
    )


async def connect(url: str) -> Connection:
    """One connection with the same ``jsonb`` codec as the pool's (scripts, tests, tools)."""
    conn = await asyncpg.connect(url)
    await _init_connection(conn)
    return conn
