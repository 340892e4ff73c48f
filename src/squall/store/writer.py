"""Write a finished run to the results database in one batched transaction.

Called once per run, after every scenario has finished: never on the engine's
hot path. A run stored again (same run id) replaces its earlier rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from squall.store.location import LOCK_TIMEOUT_S, connection
from squall.store.migrations import migrate
from squall.store.records import SESSION_COLUMNS, Provenance, RunRecord, run_record


async def write_record(conn: asyncpg.Connection, record: RunRecord) -> int:
    """Insert ``record`` (replacing a run with the same id); return its session id."""
    async with conn.transaction():
        await conn.execute("DELETE FROM high_load_sessions WHERE run_id = $1", record.run_id)
        placeholders = ", ".join(
            f"${i}::jsonb" if column == "config" else f"${i}"
            for i, column in enumerate(SESSION_COLUMNS, start=1)
        )
        session_id = int(
            await conn.fetchval(
                f"INSERT INTO high_load_sessions ({', '.join(SESSION_COLUMNS)}) "
                f"VALUES ({placeholders}) RETURNING id",
                *(record.session[c] for c in SESSION_COLUMNS),
            )
        )
        for table in record.tables:
            if not table.rows:
                continue
            columns = ("session_id", *table.columns)
            casts = [
                "::jsonb" if c in ("evidence", "workload", "errors", "details", "counts") else ""
                for c in columns
            ]
            values = ", ".join(f"${i}{cast}" for i, cast in enumerate(casts, start=1))
            await conn.executemany(
                f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({values})",
                [(session_id, *row) for row in table.rows],
            )
    return session_id


async def save_report(
    database_url: str,
    report: Mapping[str, Any],
    provenance: Provenance | None = None,
    *,
    lock_timeout_s: float = LOCK_TIMEOUT_S,
) -> int:
    """Migrate the database if needed and store ``report`` (a report.json dictionary);
    :class:`~squall.store.location.ResultsDbBusy` when another session keeps a table it
    writes locked for longer than ``lock_timeout_s``."""
    record = run_record(report, provenance or Provenance.current())
    async with connection(database_url, lock_timeout_s=lock_timeout_s) as conn:
        await migrate(conn)
        return await write_record(conn, record)
