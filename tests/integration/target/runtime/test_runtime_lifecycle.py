"""Fair scheduling, recovery of orphaned runs, shutdown, retention, migrations."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
from asyncpg.transaction import Transaction
from runtime_support import WAIT_S, Recorder, StartRuntime

from squall.target import redis_pool
from squall.target.db import create_pool
from squall.target.errors import InvalidField
from squall.target.ids import ThreadID, UserID
from squall.target.locks import RunLock
from squall.target.migrations import MIGRATIONS, migrate
from squall.target.runtime import Runtime, Submitted
from squall.target.scheduler import claim
from squall.target.settings import Settings

pytestmark = pytest.mark.integration

RUN_STATUS = "SELECT status FROM runs WHERE id = $1"
ALICE = UserID("alice")
BOB = UserID("bob")


async def test_user_with_one_run_is_not_starved(
    start_runtime: StartRuntime, recorder: Recorder
) -> None:
    gate = asyncio.Event()

    async def gated(seconds: float) -> None:
        await gate.wait()

    runtime = await start_runtime(sleeper=gated, model_ttft_ms=1, run_concurrency=2)
    for i in range(30):
        await runtime.submit(ALICE, ThreadID(f"a-{i}"), f"alice {i}", f"a{i}")
    await recorder.wait_for(lambda: len(recorder.of_type("agent_started")) == 2)
    bob = await runtime.submit(BOB, ThreadID("b-0"), "bob's only question", "b0")
    gate.set()
    await recorder.wait_completed(31)
    conn = await asyncpg.connect(runtime.settings.database_url)
    try:
        claimed = [r["id"] for r in await conn.fetch("SELECT id FROM runs ORDER BY started_at")]
    finally:
        await conn.close()
    # Two of Alice's runs held both slots; the next free slot goes to Bob, not to Alice's
    # 28 older queued runs.
    assert claimed.index(bob.run_id) == 2


async def test_orphaned_run_is_failed_and_refunded(
    start_runtime: StartRuntime, recorder: Recorder, settings: Settings
) -> None:
    submitter = await start_runtime(claim_runs=False)
    sub = await submitter.submit(ALICE, ThreadID("orphan"), "hello", "c1")
    conn = await asyncpg.connect(settings.database_url)
    try:
        # The worker that claimed it died: running, no lock in Redis, started long ago.
        assert [r.run_id for r in await claim(conn, "dead", 1, time.time())] == [sub.run_id]
        await conn.execute(
            "UPDATE runs SET started_at = now() - interval '1 hour' WHERE id = $1", sub.run_id
        )
        rescuer = await start_runtime(lock_ttl_ms=300)
        await recorder.wait_completed(1)
        [done] = recorder.thread("orphan")
        assert (done["type"], done["status"], done["charge"], done["seq"]) == (
            "agent_completed",
            "failed",
            0,
            1,
        )
        assert await conn.fetchval("SELECT status FROM runs WHERE id = $1", sub.run_id) == "failed"
        assert await conn.fetchval("SELECT refunded FROM ledger WHERE run_id = $1", sub.run_id)
        assert (await rescuer.account(ALICE))["balance"] == settings.initial_credits
        assert (await rescuer.stats())["runs_recovered_total"] == 1
    finally:
        await conn.close()


async def test_an_orphan_that_cannot_be_recovered_holds_up_no_other(
    start_runtime: StartRuntime, recorder: Recorder, settings: Settings
) -> None:
    # The oldest orphan's refund overflowed its balance: every pass on every worker stopped
    # there, and Bob's run (and thread) stayed `running` for good.
    submitter = await start_runtime(claim_runs=False)
    stuck = await submitter.submit(ALICE, ThreadID("stuck"), "hello", "c1")
    fine = await submitter.submit(BOB, ThreadID("fine"), "hello", "c2")
    conn = await asyncpg.connect(settings.database_url)
    try:
        claimed = await claim(conn, "dead", 2, time.time())
        assert {r.run_id for r in claimed} == {stuck.run_id, fine.run_id}
        for run_id, age in ((stuck.run_id, "2 hours"), (fine.run_id, "1 hour")):
            await conn.execute(
                f"UPDATE runs SET started_at = now() - interval '{age}' WHERE id = $1", run_id
            )
        await conn.execute(
            "UPDATE accounts SET balance = 9223372036854775807 WHERE user_id = $1", ALICE
        )
        rescuer = await start_runtime(lock_ttl_ms=300)
        await recorder.wait_for(lambda: bool(recorder.thread("fine")))
        [done] = recorder.thread("fine")
        assert (done["type"], done["status"], done["charge"]) == ("agent_completed", "failed", 0)
        assert await conn.fetchval(RUN_STATUS, fine.run_id) == "failed"
        assert await conn.fetchval(RUN_STATUS, stuck.run_id) == "running"
        assert (await rescuer.stats())["runs_recovered_total"] >= 1
    finally:
        await conn.close()


async def test_a_grant_leaves_room_for_the_refunds_of_runs_not_ended(
    start_runtime: StartRuntime, settings: Settings
) -> None:
    # Granted up to the largest balance while a charged run was in flight, its refund
    # overflowed later (and stopped orphan recovery, above).
    runtime = await start_runtime(claim_runs=False)
    await runtime.submit(ALICE, ThreadID("t"), "hello", "c1")  # charged, queued
    balance = (await runtime.account(ALICE))["balance"]
    with pytest.raises(InvalidField, match="with the charges of its runs not ended given back"):
        await runtime.add_credits(ALICE, 2**63 - 1 - balance, UserID("root"))
    room = 2**63 - 1 - balance - settings.run_cost
    assert (await runtime.add_credits(ALICE, room, UserID("root")))["balance"] == balance + room


async def test_close_cancels_and_refunds_unfinished_runs(
    start_runtime: StartRuntime, recorder: Recorder, settings: Settings
) -> None:
    async def never(seconds: float) -> None:
        await asyncio.Event().wait()

    runtime = await start_runtime(sleeper=never, model_ttft_ms=1)
    sub = await runtime.submit(ALICE, ThreadID("t"), "hello", "c1")
    await recorder.wait_for(lambda: len(recorder.of_type("tool_completed")) == 1)
    await runtime.close(grace_s=0.05)
    done = recorder.thread("t")[-1]
    assert (done["type"], done["status"], done["charge"], done["seq"]) == (
        "agent_completed",
        "cancelled",
        0,
        4,
    )
    conn = await asyncpg.connect(settings.database_url)
    try:
        assert await _settled(conn, sub.run_id) == {
            "status": "cancelled",
            "refunded": True,
            "balance": settings.initial_credits,
        }
    finally:
        await conn.close()
    assert _ended(await runtime.stats()) == {"completed": 0, "failed": 0, "cancelled": 1}


async def _settled(conn: asyncpg.Connection, run_id: str) -> dict[str, object]:
    """How a run ended: its status, whether its charge was refunded, its user's balance."""
    row = await conn.fetchrow(
        "SELECT r.status, l.refunded, a.balance FROM runs r JOIN ledger l ON l.run_id = r.id "
        "JOIN accounts a ON a.user_id = r.user_id WHERE r.id = $1",
        run_id,
    )
    return dict(row)


def _ended(stats: dict[str, float]) -> dict[str, float]:
    """The worker's counts of the runs it ended, by how they ended."""
    return {
        status: stats[f"runs_{status}_total"] for status in ("completed", "failed", "cancelled")
    }


async def test_retention_keeps_the_newest_events(
    start_runtime: StartRuntime, recorder: Recorder
) -> None:
    runtime = await start_runtime(replay_retention_events=4)
    await runtime.submit(ALICE, ThreadID("t"), "hello", "c1")
    await recorder.wait_completed(1)
    assert [e["seq"] for e in await runtime.replay(ALICE, ThreadID("t"), 0)] == [3, 4, 5, 6]


async def test_concurrent_migrations_apply_once(fresh_db: str) -> None:
    pools = [await create_pool(fresh_db, max_size=2) for _ in range(4)]
    try:
        applied = await asyncio.gather(*(migrate(p) for p in pools))
        assert sorted(applied) == [[], [], [], [m.version for m in MIGRATIONS]]
        assert await migrate(pools[0]) == []
        assert await pools[0].fetchval("SELECT count(*) FROM schema_migrations") == len(MIGRATIONS)
    finally:
        for pool in pools:
            await pool.close()


async def test_close_during_the_completions_publish_keeps_the_run_completed(
    start_runtime: StartRuntime, recorder: Recorder, settings: Settings
) -> None:
    # The completion is stored (answer, status, charge) and its publish is under way when
    # the shutdown grace ends: the run is over, so nothing is refunded or appended again.
    publishing = asyncio.Event()

    async def publish(user: UserID, event: dict[str, object]) -> None:
        if event["type"] == "agent_completed" and not publishing.is_set():
            publishing.set()
            await asyncio.Event().wait()
        await recorder.publish(user, event)

    runtime = await start_runtime(publish=publish)
    sub = await runtime.submit(ALICE, ThreadID("t"), "hello", "c1")
    async with asyncio.timeout(WAIT_S):
        await publishing.wait()
    await runtime.close(grace_s=0)
    conn = await asyncpg.connect(settings.database_url)
    try:
        completions = await conn.fetch(
            "SELECT payload->>'status' AS status, (payload->>'charge')::int AS charge "
            "FROM events WHERE thread_id = 't' AND type = 'agent_completed'"
        )
        assert [tuple(r) for r in completions] == [("completed", settings.run_cost)]
        assert await _settled(conn, sub.run_id) == {
            "status": "completed",
            "refunded": False,
            "balance": settings.initial_credits - settings.run_cost,
        }
    finally:
        await conn.close()
    # The interrupted publish is made again: sockets get the completion live.
    assert [e["status"] for e in recorder.of_type("agent_completed")] == ["completed"]
    # Counted as it ended: completed, although the shutdown cancelled its task.
    assert _ended(await runtime.stats()) == {"completed": 1, "failed": 0, "cancelled": 0}


class SwallowingLock(RunLock):
    """A lock whose acquire loses a cancellation that arrives while it waits for Redis, as
    redis-py does on Python 3.11 when the answer comes with it (CPython gh-86296)."""

    async def acquire(self, thread: ThreadID) -> int | None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.05)
        return await super().acquire(thread)


@pytest.mark.parametrize("lost_cancel", [False, True], ids=["cancelled", "cancel-lost"])
async def test_close_gives_back_a_run_that_had_not_begun(
    start_runtime: StartRuntime,
    recorder: Recorder,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    lost_cancel: bool,
) -> None:
    # The run is claimed but waits for its thread lock (held here) when the shutdown grace
    # ends: it has done nothing visible, so it goes back to the queue for the next worker
    # instead of staying `running` until orphan recovery fails it. When the shutdown's
    # cancellation was lost in the lock's Redis command, the run waited out the lock's TTL
    # (60 s) inside close(), then took the lock and ran after the shutdown.
    if lost_cancel:
        monkeypatch.setattr("squall.target.runtime.RunLock", SwallowingLock)
    redis = redis_pool.connect(settings)
    held = RunLock(redis, settings.redis_prefix, ttl_ms=60_000)
    thread = ThreadID("t")
    try:
        token = await held.acquire(thread)
        assert token is not None
        runtime = await start_runtime(lock_ttl_ms=60_000)
        sub = await runtime.submit(ALICE, thread, "hello", "c1")
        conn = await asyncpg.connect(settings.database_url)
        try:
            async with asyncio.timeout(WAIT_S):
                # Claimed: the run now waits for the lock held here.
                while await conn.fetchval(RUN_STATUS, sub.run_id) != "running":  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
                await runtime.close(grace_s=0)
            row = await conn.fetchrow(
                "SELECT r.status, r.worker, t.queued, l.refunded FROM runs r "
                "JOIN threads t ON t.id = r.thread_id JOIN ledger l ON l.run_id = r.id "
                "WHERE r.id = $1",
                sub.run_id,
            )
            assert dict(row) == {"status": "queued", "worker": None, "queued": 1, "refunded": False}
        finally:
            await conn.close()
        assert _ended(await runtime.stats()) == {"completed": 0, "failed": 0, "cancelled": 0}
        assert await held.release(thread, token)  # still the test's: not taken meanwhile
        monkeypatch.undo()
        await start_runtime()
        await recorder.wait_completed(1)
        [done] = recorder.of_type("agent_completed")
        assert (done["run_id"], done["status"]) == (sub.run_id, "completed")
    finally:
        await redis.aclose()


async def test_close_gives_back_a_run_claimed_by_a_claim_it_cut_short(
    start_runtime: StartRuntime, settings: Settings
) -> None:
    # The scheduler claims runs one statement at a time and starts them once all are done.
    # A shutdown between two statements (the second waits for a thread row held here)
    # leaves the first run claimed but never started: it goes back to the queue at once,
    # not to orphan recovery a lock TTL and a sweep later.
    async with _claim_stuck_at_the_second_run(start_runtime, settings) as stuck:
        assert await stuck.conn.fetchval(RUN_STATUS, stuck.first.run_id) == "running"
        async with asyncio.timeout(WAIT_S):
            await stuck.runtime.close(grace_s=0)
        await stuck.held.rollback()
        rows = await stuck.conn.fetch(
            "SELECT r.id, r.status, r.worker, t.queued FROM runs r "
            "JOIN threads t ON t.id = r.thread_id ORDER BY r.pos"
        )
        assert [tuple(r) for r in rows] == [
            (stuck.first.run_id, "queued", None, 1),
            (stuck.second.run_id, "queued", None, 1),
        ]
        assert _ended(await stuck.runtime.stats()) == {"completed": 0, "failed": 0, "cancelled": 0}


async def test_runs_a_claim_returns_after_claiming_stopped_go_back_to_the_queue(
    start_runtime: StartRuntime, recorder: Recorder, settings: Settings
) -> None:
    # A worker's drain stops claiming while a claim of its is under way (the claim's second
    # statement waits for a thread row held here). The runs that claim returns are not
    # started on the stopping worker: they go back to the queue, and another worker runs them.
    async with _claim_stuck_at_the_second_run(start_runtime, settings) as stuck:
        stuck.runtime.stop_claiming()
        await stuck.held.rollback()
        given_back = "SELECT count(*) FROM runs WHERE status = 'queued' AND worker IS NULL"
        async with asyncio.timeout(WAIT_S):
            while await stuck.conn.fetchval(given_back) < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        queued = await stuck.conn.fetch("SELECT id, queued FROM threads ORDER BY id")
        assert [tuple(row) for row in queued] == [("first", 1), ("second", 1)]
        stats = await stuck.runtime.stats()
        assert _ended(stats) == {"completed": 0, "failed": 0, "cancelled": 0}
        assert stats["runs_claimed_total"] == 0
    await start_runtime()
    await recorder.wait_completed(2)
    done = {(event["run_id"], event["status"]) for event in recorder.of_type("agent_completed")}
    assert done == {(stuck.first.run_id, "completed"), (stuck.second.run_id, "completed")}


@dataclass
class _StuckClaim:
    """Two queued runs, on threads ``first`` and ``second``, and a runtime whose claim has
    taken the first and waits for the second's thread row, which ``held`` locks."""

    first: Submitted
    second: Submitted
    runtime: Runtime
    conn: asyncpg.Connection
    held: Transaction


@contextlib.asynccontextmanager
async def _claim_stuck_at_the_second_run(
    start_runtime: StartRuntime, settings: Settings
) -> AsyncIterator[_StuckClaim]:
    submitter = await start_runtime(claim_runs=False)
    first = await submitter.submit(ALICE, ThreadID("first"), "hello", "c1")
    second = await submitter.submit(ALICE, ThreadID("second"), "hello", "c2")
    conn = await asyncpg.connect(settings.database_url)
    holder = await asyncpg.connect(settings.database_url)
    try:
        held = holder.transaction()
        await held.start()
        await holder.execute("SELECT 1 FROM threads WHERE id = 'second' FOR UPDATE")
        runtime = await start_runtime()
        async with asyncio.timeout(WAIT_S):
            while not await conn.fetchval(  # noqa: ASYNC110
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE '%WITH claimed AS%'"
            ):
                await asyncio.sleep(0.01)
        yield _StuckClaim(first, second, runtime, conn, held)
    finally:
        await holder.close()  # rolls back what it still holds
        await conn.close()
