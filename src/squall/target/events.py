"""The per-thread event store: gapless sequence numbers under a fencing token.

``append`` allocates the next ``seq`` with ``UPDATE threads SET last_seq = last_seq + 1
... AND fence = $token`` and inserts the event in the same statement, so a seq
exists only if its event does (no gaps), the row lock on the thread serialises
allocation across workers (no duplicates), and a writer whose token was superseded
allocates nothing (``StaleFence``). The stored payload is the complete event dict, so a
replay returns exactly what was published.
"""

from __future__ import annotations

import time
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


#: Seq allocation, insert and retention in ONE statement: a statement is atomic on its
#: own, so the seq exists only if its event does, whether or not the caller wraps it in a
#: transaction, and an event costs one round trip instead of four (BEGIN, UPDATE, INSERT,
#: COMMIT). ``$2`` NULL skips the fence check (the ``no_fencing`` defect); ``$7`` NULL
#: keeps every event. The stored payload is the published dict: ``seq`` is added here.
_APPEND = """
WITH allocated AS (
    UPDATE threads SET last_seq = last_seq + 1
    WHERE id = $1 AND ($2::bigint IS NULL OR fence = $2)
    RETURNING last_seq
), stored AS (
    INSERT INTO events (thread_id, seq, run_id, type, payload, ts)
    SELECT $1, last_seq, $3, $4, $5::jsonb || jsonb_build_object('seq', last_seq), $6
    FROM allocated
), pruned AS (
    DELETE FROM events
    WHERE thread_id = $1 AND seq <= (SELECT last_seq FROM allocated) - $7::bigint
)
SELECT last_seq FROM allocated
"""


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
    ts: float | None = None,
) -> dict[str, Any]:
    """Store one event and return the dict to publish once it is committed.

    One statement (see ``_APPEND``): ``conn`` may be a connection inside the caller's
    transaction or a pool (the event commits on its own). ``enforce_fence=False`` is the
    deliberate ``no_fencing`` defect. ``retention`` keeps at most that many events of
    the thread (older ones are deleted by the same statement). ``ts`` (default: now)
    with the run and type identifies the event for :func:`stored`.
    """
    ts = time.time() if ts is None else ts
    stored: dict[str, Any] = {
        "type": str(type_),
        "thread_id": thread,
        "run_id": run,
        "ts": ts,
        **fields,
    }
    seq = await conn.fetchval(
        _APPEND,
        thread,
        fence if enforce_fence else None,
        run,
        str(type_),
        stored,
        ts,
        retention,
    )
    if seq is None:
        current = await conn.fetchval("SELECT fence FROM threads WHERE id = $1", thread)
        raise StaleFence(
            f"run {run} wrote {type_} to thread {thread!r} with fencing token {fence}, "
            f"but the thread's fence is {current}: another holder took the run lock; "
            "this writer must stop"
        )
    return {
        "type": str(type_),
        "thread_id": thread,
        "run_id": run,
        "seq": int(seq),
        "ts": ts,
        **fields,
    }


async def stored(
    conn: Connection, thread: ThreadID, run: RunID, type_: EventType, ts: float
) -> dict[str, Any] | None:
    """The event :func:`append` stored for ``run`` with this type and timestamp, or None.

    After the connection was lost during an append, this tells whether the append
    committed before it was lost (a retry would otherwise store the event twice).
    """
    payload = await conn.fetchval(
        "SELECT payload FROM events WHERE thread_id = $1 AND run_id = $2 AND type = $3 AND ts = $4",
        thread,
        run,
        str(type_),
        ts,
    )
    return None if payload is None else dict(payload)


async def last_of_run(
    conn: Connection, thread: ThreadID, run: RunID, type_: EventType
) -> dict[str, Any] | None:
    """The latest stored event of ``run`` with this type, or None."""
    payload = await conn.fetchval(
        "SELECT payload FROM events WHERE thread_id = $1 AND run_id = $2 AND type = $3 "
        "ORDER BY seq DESC LIMIT 1",
        thread,
        run,
        str(type_),
    )
    return None if payload is None else dict(payload)


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
