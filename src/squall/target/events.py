"""The per-thread event store: gapless sequence numbers under a fencing token.

``append`` allocates the next ``seq`` with ``UPDATE threads SET last_seq = last_seq + 1
... AND fence = $token`` and inserts the event in the caller's transaction, so a seq
exists only if its event does (no gaps), the row lock on the thread serialises
allocation across workers (no duplicates), and a writer whose token was superseded
allocates nothing (``StaleFence``). The stored payload is the complete event dict, so a
replay returns exactly what was published.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from squall.target.db import Connection
from squall.target.errors import StaleFence
from squall.target.ids import RunID, ThreadID


class EventType(StrEnum):
    AGENT_STARTED = "agent_started"
    TOOL_EXECUTING = "tool_executing"
    TOOL_COMPLETED = "tool_completed"
    AGENT_THINKING = "agent_thinking"
    AGENT_COMPLETED = "agent_completed"


async def claim_fence(conn: Connection, thread: ThreadID, token: int) -> int | None:
    """Record ``token`` as the thread's fence; return ``None`` on success.

    Otherwise return the newer fence already recorded: ``token`` is stale (or Redis
    lost its counters, which :meth:`RunLock.raise_floor` repairs).
    """
    updated = await conn.fetchval(
        "UPDATE threads SET fence = $2 WHERE id = $1 AND fence < $2 RETURNING fence",
        thread,
        token,
    )
    if updated is not None:
        return None
    current = await conn.fetchval("SELECT fence FROM threads WHERE id = $1", thread)
    return int(current or 0)


async def append(
    conn: Connection,
    thread: ThreadID,
    run: RunID,
    type_: EventType,
    fields: dict[str, Any],
    *,
    fence: int,
    enforce_fence: bool = True,
    retention: int | None = None,
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """Store one event in the caller's transaction and return the dict to publish after commit.

    ``enforce_fence=False`` is the deliberate ``no_fencing`` defect. ``retention`` keeps
    at most that many events of the thread (older ones are deleted in the same
    transaction).
    """
    if enforce_fence:
        seq = await conn.fetchval(
            "UPDATE threads SET last_seq = last_seq + 1 WHERE id = $1 AND fence = $2 "
            "RETURNING last_seq",
            thread,
            fence,
        )
    else:
        seq = await conn.fetchval(
            "UPDATE threads SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq", thread
        )
    if seq is None:
        current = await conn.fetchval("SELECT fence FROM threads WHERE id = $1", thread)
        raise StaleFence(
            f"run {run} wrote {type_} to thread {thread!r} with fencing token {fence}, "
            f"but the thread's fence is {current}: another holder took the run lock; "
            "this writer must stop"
        )
    ts = clock()
    event: dict[str, Any] = {
        "type": str(type_),
        "thread_id": thread,
        "run_id": run,
        "seq": int(seq),
        "ts": ts,
        **fields,
    }
    await conn.execute(
        "INSERT INTO events (thread_id, seq, run_id, type, payload, ts) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        thread,
        seq,
        run,
        str(type_),
        event,
        ts,
    )
    if retention is not None and seq > retention:
        await conn.execute(
            "DELETE FROM events WHERE thread_id = $1 AND seq <= $2", thread, seq - retention
        )
    return event


async def read_after(
    conn: Connection, thread: ThreadID, after_seq: int, limit: int | None = None
) -> list[dict[str, Any]]:
    """Stored events of ``thread`` with ``seq > after_seq``, ascending."""
    rows = await conn.fetch(
        "SELECT payload FROM events WHERE thread_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        thread,
        after_seq,
        limit,
    )
    return [dict(r["payload"]) for r in rows]
