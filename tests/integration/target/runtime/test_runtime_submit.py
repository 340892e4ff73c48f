"""``submit`` as one statement (``squall_submit``): exact refusals that leave nothing behind."""

from __future__ import annotations

import asyncio

import pytest
from runtime_support import StartRuntime

from squall.target.db import connect
from squall.target.errors import InsufficientCredits, NotFound, QueueFull
from squall.target.ids import ThreadID, UserID
from squall.target.runtime import Submitted

pytestmark = pytest.mark.integration

ALICE = UserID("alice")
BOB = UserID("bob")
SUBMITS = 24
BOUND = 3


async def _counts(database_url: str) -> dict[str, int]:
    conn = await connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM threads) AS threads, "
            "(SELECT count(*) FROM messages) AS messages, (SELECT count(*) FROM runs) AS runs, "
            "(SELECT count(*) FROM ledger) AS ledger"
        )
        return {k: int(v) for k, v in dict(row).items()}
    finally:
        await conn.close()


async def test_first_submit_creates_the_account_and_charges_it(start_runtime: StartRuntime) -> None:
    runtime = await start_runtime(claim_runs=False, initial_credits=10, run_cost=3)
    sub = await runtime.submit(ALICE, ThreadID("t1"), "hello", "c1")
    account = await runtime.account(ALICE)
    assert (account["balance"], account["initial_credits"], account["runs_charged"]) == (7, 10, 1)
    messages = await runtime.messages(ALICE, ThreadID("t1"))
    assert [(m["message_id"], m["run_id"], m["client_msg_id"]) for m in messages] == [
        (sub.message_id, sub.run_id, "c1")
    ]


async def test_refusal_for_credits_writes_nothing(start_runtime: StartRuntime) -> None:
    runtime = await start_runtime(claim_runs=False, initial_credits=2, run_cost=5)
    with pytest.raises(InsufficientCredits, match="has 2 credits but a run costs 5"):
        await runtime.submit(ALICE, ThreadID("fresh"), "hello", "c1")
    assert await _counts(runtime.settings.database_url) == {
        "threads": 0,
        "messages": 0,
        "runs": 0,
        "ledger": 0,
    }
    with pytest.raises(NotFound):  # the thread was rolled back with the rest
        await runtime.messages(ALICE, ThreadID("fresh"))


async def test_another_users_thread_is_not_found_and_unchanged(
    start_runtime: StartRuntime,
) -> None:
    runtime = await start_runtime(claim_runs=False)
    await runtime.submit(ALICE, ThreadID("mine"), "hello", "c1")
    with pytest.raises(NotFound, match="'mine' not found"):
        await runtime.submit(BOB, ThreadID("mine"), "intrusion", "c2")
    counts = await _counts(runtime.settings.database_url)
    assert (counts["messages"], counts["runs"], counts["ledger"]) == (1, 1, 1)
    assert (await runtime.account(BOB))["runs_charged"] == 0


async def test_concurrent_submits_on_two_workers_respect_the_queue_bound_exactly(
    start_runtime: StartRuntime,
) -> None:
    workers = [
        await start_runtime(claim_runs=False, max_queued_per_thread=BOUND),
        await start_runtime(claim_runs=False, max_queued_per_thread=BOUND),
    ]
    results = await asyncio.gather(
        *(workers[i % 2].submit(ALICE, ThreadID("hot"), f"m{i}", f"c{i}") for i in range(SUBMITS)),
        return_exceptions=True,
    )
    accepted = [r for r in results if isinstance(r, Submitted)]
    refused = [r for r in results if isinstance(r, QueueFull)]
    assert (len(accepted), len(refused)) == (BOUND, SUBMITS - BOUND), results
    assert all(f"{BOUND} queued runs" in str(r) for r in refused)
    account = await workers[0].account(ALICE)
    assert account["runs_charged"] == BOUND
    assert account["balance"] == account["initial_credits"] - BOUND
