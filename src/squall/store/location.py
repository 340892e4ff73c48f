"""Where the results database lives, chosen once for every command.

In order: ``--results-db URL``; ``SQUALL_RESULTS_DB``; the database
``squall_results`` on the server ``DATABASE_URL`` names (created on first
use); otherwise a persistent embedded cluster under ``<results_dir>/.db/``,
started for the duration of the command (see
:mod:`squall.services.persistent`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import asyncpg

from squall.services import with_database
from squall.services.persistent import persistent_postgres

#: Name of the results database on a shared server (DATABASE_URL, or the embedded cluster).
RESULTS_DATABASE = "squall_results"


async def _ensure_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(server_url, timeout=10)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def describe(explicit: str | None, results_dir: Path, environ: Mapping[str, str]) -> str:
    """Where :func:`results_database` will look, in words, for messages."""
    if explicit:
        return "--results-db"
    if environ.get("SQUALL_RESULTS_DB"):
        return "SQUALL_RESULTS_DB"
    if environ.get("DATABASE_URL"):
        return f"database {RESULTS_DATABASE} on DATABASE_URL's server"
    return f"embedded cluster in {results_dir / '.db'}"


@contextlib.contextmanager
def results_database(
    explicit: str | None,
    results_dir: Path,
    *,
    environ: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """Yield the URL of the results database, starting the persistent cluster if needed."""
    env = os.environ if environ is None else environ
    url = explicit or env.get("SQUALL_RESULTS_DB") or None
    if url is not None:
        yield url
        return
    server = env.get("DATABASE_URL") or None
    if server is not None:
        asyncio.run(_ensure_database(server, RESULTS_DATABASE))
        yield with_database(server, RESULTS_DATABASE)
        return
    with persistent_postgres(results_dir / ".db" / "data") as cluster:
        asyncio.run(_ensure_database(cluster, RESULTS_DATABASE))
        yield with_database(cluster, RESULTS_DATABASE)
