"""The per-thread queue bound reads ``threads.queued`` (migration 3): it must always equal
the thread's queued runs, through submits, refusals, claims, requeues and completions."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest
from runtime_support import Recorder, StartRuntime

from squall.target import events
from squall.target.agent import requeue
from squall.target.db import Pool, create_pool
from squall.target.errors import InsufficientCredits, NotFound, QueueFull
from squall.target.events import EventType
from squall.target.ids import ThreadID, UserID
from squall.target.migrations import MIGRATIONS, migrate
from squall.target.runtime import Submitted
from squall.target.scheduler import claim

pytestmark = pytest.mark.integration

ALICE = UserID("alice")
BOB = UserID("bob")
BOUND = 2

_MISCOUNTED = """
SELECT t.id, t.queued, (SELECT count(*) FROM runs r
                        WHERE r.thread_id = t.id AND r.status = 'queued') AS runs_queued
FROM threads t
"""


async def _counters(url: str) -> dict[str, tuple[int, int]]:
    """Every thread's (counter, queued runs)."""
    conn = await asyncpg.connect(url)
    try:
        return {r["id"]: (r["queued"], r["runs_queued"]) for r in await conn.fetch(_MISCOUNTED)}
    finally:
        await conn.close()


async def test_claims_free_the_bound_and_the_counter_follows_every_run(
    start_runtime: StartRuntime, recorder: Recorder
) -> None:
    submitter = await start_runtime(claim_runs=False, max_queued_per_thread=BOUND)
    url = submitter.settings.database_url
    thread = ThreadID("t")
    for i in range(BOUND):
        await submitter.submit(ALICE, thread, f"m{i}", f"c{i}")
    with pytest.raises(QueueFull, match=f"{BOUND} queued runs"):
        await submitter.submit(ALICE, thread, "one too many", "c-full")
    with pytest.raises(NotFound):
        await submitter.submit(BOB, thread, "not mine", "c-bob")
    assert await _counters(url) == {"t": (BOUND, BOUND)}

    await start_runtime(max_queued_per_thread=BOUND)  # claims and completes them
    await recorder.wait_completed(BOUND)
    assert await _counters(url) == {"t": (0, 0)}
    await submitter.submit(ALICE, thread, "room again", "c-again")
    await recorder.wait_completed(BOUND + 1)
    assert await _counters(url) == {"t": (0, 0)}


async def test_requeue_counts_the_run_again_once(start_runtime: StartRuntime) -> None:
    runtime = await start_runtime(claim_runs=False)
    sub = await runtime.submit(ALICE, ThreadID("t"), "hello", "c1")
    pool: Pool = await create_pool(runtime.settings.database_url, max_size=2)
    try:
        [run] = await claim(pool, "worker-a", 1, time.time())
        assert run.run_id == sub.run_id
        assert await _counters(runtime.settings.database_url) == {"t": (0, 0)}
        assert await requeue(pool, run, "worker-a")
        assert await _counters(runtime.settings.database_url) == {"t": (1, 1)}
        # No longer running: nothing to give back.
        assert not await requeue(pool, run, "worker-a")
        assert not await requeue(pool, run, "worker-b")
        assert await _counters(runtime.settings.database_url) == {"t": (1, 1)}
        [again] = await claim(pool, "worker-b", 1, time.time())
        assert again.run_id == sub.run_id
        assert await _counters(runtime.settings.database_url) == {"t": (0, 0)}
        # Begun (an event stored): it is never given back, to run a second time.
        await pool.execute("UPDATE threads SET fence = 1 WHERE id = 't'")
        await events.append(pool, run.thread_id, run.run_id, EventType.AGENT_STARTED, {}, fence=1)
        assert not await requeue(pool, run, "worker-b")
        assert await _counters(runtime.settings.database_url) == {"t": (0, 0)}
    finally:
        await pool.close()


async def test_concurrent_submits_and_claims_keep_every_counter_exact(
    start_runtime: StartRuntime, recorder: Recorder
) -> None:
    gate = asyncio.Event()

    async def gated(seconds: float) -> None:
        await gate.wait()

    workers = [
        await start_runtime(max_queued_per_thread=BOUND, sleeper=gated, model_ttft_ms=1)
        for _ in range(2)
    ]
    url = workers[0].settings.database_url
    results = await asyncio.gather(
        *(workers[i % 2].submit(ALICE, ThreadID(f"t{i % 3}"), f"m{i}", f"c{i}") for i in range(30)),
        return_exceptions=True,
    )
    accepted = [r for r in results if isinstance(r, Submitted)]
    assert all(isinstance(r, (Submitted, QueueFull)) for r in results), results
    counters = await _counters(url)
    assert {t: counter for t, (counter, runs) in counters.items()} == {
        t: runs for t, (counter, runs) in counters.items()
    }
    # One run of each thread may be running already; the rest queue up to the bound.
    assert all(counter <= BOUND for counter, _ in counters.values())
    gate.set()
    await recorder.wait_completed(len(accepted))
    assert await _counters(url) == {"t0": (0, 0), "t1": (0, 0), "t2": (0, 0)}


async def test_refusals_leave_the_counter_as_it_was(start_runtime: StartRuntime) -> None:
    runtime = await start_runtime(claim_runs=False, initial_credits=1, run_cost=1)
    await runtime.submit(ALICE, ThreadID("t"), "the only paid one", "c1")
    with pytest.raises(InsufficientCredits):
        await runtime.submit(ALICE, ThreadID("t"), "no credits left", "c2")
    with pytest.raises(InsufficientCredits):
        await runtime.submit(ALICE, ThreadID("new"), "nor here", "c3")
    assert await _counters(runtime.settings.database_url) == {"t": (1, 1)}


async def test_migration_3_counts_existing_queued_runs_and_keeps_the_rules(
    fresh_db: str,
) -> None:
    pool: Pool = await create_pool(fresh_db, max_size=2)
    try:
        async with pool.acquire() as conn:
            await conn.execute(
                "CREATE TABLE schema_migrations (version integer PRIMARY KEY, "
                "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            for old in MIGRATIONS[:2]:
                await conn.execute(old.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    old.version,
                    old.name,
                )
            for i, thread in enumerate(["a", "a", "a", "b", "c"]):
                await conn.fetchval(
                    "SELECT squall_submit($1, 'u', $2, $3, 'hi', $4, 1, 100, 10)",
                    thread,
                    f"m{i}",
                    f"r{i}",
                    f"c{i}",
                )
            await conn.execute("UPDATE runs SET status = 'running' WHERE id = 'r0'")
            await conn.execute("UPDATE runs SET status = 'completed' WHERE id = 'r3'")
        assert await migrate(pool) == [m.version for m in MIGRATIONS[2:]]
        assert await _counters(fresh_db) == {"a": (2, 2), "b": (0, 0), "c": (1, 1)}
        assert await pool.fetchval("SELECT balance FROM accounts WHERE user_id = 'u'") == 95
        refused = [
            "UPDATE runs SET status = 'paused' WHERE id = 'r1'",
            "UPDATE messages SET role = 'system' WHERE id = 'm1'",
            "UPDATE accounts SET balance = -1 WHERE user_id = 'u'",
            "INSERT INTO ledger (run_id, user_id, amount) VALUES ('x', 'u', -5)",
        ]
        for statement in refused:
            with pytest.raises(asyncpg.CheckViolationError):
                await pool.execute(statement)
    finally:
        await pool.close()
