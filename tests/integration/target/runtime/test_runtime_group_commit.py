"""Group commit through the real runtime and pool: batches, refusals, fallback, cancellation."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from runtime_support import WAIT_S, StartRuntime

from squall.target.db import connect
from squall.target.errors import InsufficientCredits
from squall.target.ids import ThreadID, UserID
from squall.target.runtime import Runtime, Submitted

pytestmark = pytest.mark.integration

ALICE = UserID("alice")
WAITING_ON_A_LOCK = (
    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
    "AND datname = current_database()"
)


async def _ledger(runtime: Runtime) -> dict[str, int]:
    conn = await connect(runtime.settings.database_url)
    try:
        row = await conn.fetchrow(
            "SELECT a.balance, a.initial, (SELECT coalesce(sum(amount), 0) FROM ledger) AS spent, "
            "(SELECT count(*) FROM ledger) AS ledger, (SELECT count(*) FROM runs) AS runs, "
            "(SELECT count(*) FROM messages) AS messages, "
            "(SELECT coalesce(sum(queued), 0) FROM threads) AS queued "
            "FROM accounts a WHERE a.user_id = $1",
            ALICE,
        )
        return {k: int(v) for k, v in dict(row).items()}
    finally:
        await conn.close()


async def test_concurrent_submits_of_one_user_go_in_batches(start_runtime: StartRuntime) -> None:
    runtime = await start_runtime(claim_runs=False, max_queued_per_thread=100)
    callers, each = 8, 5
    submits = callers * each

    async def caller(k: int) -> list[Submitted]:
        return [
            await runtime.submit(ALICE, ThreadID(f"t{i % 5}"), f"m{i}", f"c{i}")
            for i in range(k, submits, callers)
        ]

    results = [s for done in await asyncio.gather(*map(caller, range(callers))) for s in done]
    assert len({r.run_id for r in results}) == submits
    stats = await runtime.stats()
    assert stats["runs_submitted_total"] == submits
    assert 1 <= stats["submit_batches_total"] <= stats["submit_statements_total"] < submits
    assert stats["submit_batched_total"] > submits / 2
    assert stats["submit_batch_fallbacks_total"] == 0
    ledger = await _ledger(runtime)
    assert ledger["balance"] == ledger["initial"] - ledger["spent"]
    assert ledger["ledger"] == ledger["runs"] == ledger["messages"] == ledger["queued"] == submits
    for i in range(5):  # each thread's messages in submission order
        messages = await runtime.messages(ALICE, ThreadID(f"t{i}"))
        assert sorted(m["client_msg_id"] for m in messages) == sorted(
            f"c{j}" for j in range(i, submits, 5)
        )


async def test_a_balance_running_out_mid_batch_refuses_exactly_the_later_callers(
    start_runtime: StartRuntime,
) -> None:
    runtime = await start_runtime(claim_runs=False, initial_credits=10, run_cost=2)
    results = await asyncio.gather(
        *(runtime.submit(ALICE, ThreadID(f"t{i % 3}"), f"m{i}", f"c{i}") for i in range(12)),
        return_exceptions=True,
    )
    assert [isinstance(r, Submitted) for r in results] == [True] * 5 + [False] * 7
    for refused in results[5:]:
        assert isinstance(refused, InsufficientCredits)
        assert "has 0 credits but a run costs 2" in str(refused)
    assert (await runtime.stats())["submit_batches_total"] >= 1
    ledger = await _ledger(runtime)
    assert (ledger["balance"], ledger["spent"], ledger["runs"], ledger["queued"]) == (0, 10, 5, 5)


async def test_a_failing_batch_is_retried_one_by_one(start_runtime: StartRuntime) -> None:
    """A NUL character fails the whole batch statement; alone, it fails only its caller."""
    runtime = await start_runtime(claim_runs=False)
    contents = ["fine", "fine too", "bad \x00 byte", "fine again"]
    results = await asyncio.gather(
        *(runtime.submit(ALICE, ThreadID("t"), c, f"c{i}") for i, c in enumerate(contents)),
        return_exceptions=True,
    )
    assert isinstance(results[2], asyncpg.PostgresError)
    assert all(isinstance(results[i], Submitted) for i in (0, 1, 3)), results
    stats = await runtime.stats()
    assert stats["submit_batch_fallbacks_total"] == 1
    assert stats["runs_submitted_total"] == 3
    ledger = await _ledger(runtime)
    assert (ledger["runs"], ledger["ledger"], ledger["queued"]) == (3, 3, 3)
    assert ledger["balance"] == ledger["initial"] - ledger["spent"]


async def test_cancelled_callers_are_dropped_before_sending_and_charged_after(
    start_runtime: StartRuntime,
) -> None:
    runtime = await start_runtime(claim_runs=False)
    await runtime.account(ALICE)
    rival = await connect(runtime.settings.database_url)
    try:
        tx = rival.transaction()
        await tx.start()
        await rival.execute("SELECT 1 FROM accounts WHERE user_id = $1 FOR UPDATE", ALICE)
        sent = asyncio.create_task(runtime.submit(ALICE, ThreadID("t"), "sent", "c1"))
        async with asyncio.timeout(WAIT_S):  # its statement waits for the account row
            while not await rival.fetchval(WAITING_ON_A_LOCK):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        waiting = [
            asyncio.create_task(runtime.submit(ALICE, ThreadID("t"), f"waits {i}", f"c{i}"))
            for i in (2, 3, 4)
        ]
        await asyncio.sleep(0)
        sent.cancel()
        waiting[1].cancel()
        await tx.commit()
    finally:
        await rival.close()
    async with asyncio.timeout(WAIT_S):
        results = await asyncio.gather(sent, *waiting, return_exceptions=True)
        await runtime._batcher.drain()
    assert isinstance(results[0], asyncio.CancelledError)
    assert isinstance(results[2], asyncio.CancelledError)
    assert isinstance(results[1], Submitted)
    assert isinstance(results[3], Submitted)
    messages = await runtime.messages(ALICE, ThreadID("t"))
    assert [m["client_msg_id"] for m in messages] == ["c1", "c2", "c4"]
    stats = await runtime.stats()
    assert (stats["runs_submitted_total"], stats["submit_statements_total"]) == (3, 2)
    ledger = await _ledger(runtime)
    assert (ledger["runs"], ledger["ledger"], ledger["queued"]) == (3, 3, 3)
    assert ledger["balance"] == ledger["initial"] - ledger["spent"]
