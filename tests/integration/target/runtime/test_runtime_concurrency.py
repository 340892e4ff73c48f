"""Two workers, concurrent submits: one run per thread at a time, gapless seq, exact billing."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from runtime_support import Recorder, StartRuntime

from squall.target.errors import InsufficientCredits
from squall.target.ids import ThreadID, UserID
from squall.target.runtime import Runtime, Submitted

pytestmark = pytest.mark.integration

ALICE = UserID("alice")
N = 20


async def _submit_all(
    workers: list[Runtime], threads: list[str], user: UserID = ALICE
) -> list[Submitted | BaseException]:
    """N submits at once, alternating between the workers."""
    return await asyncio.gather(
        *(
            workers[i % len(workers)].submit(user, ThreadID(threads[i]), f"message {i}", f"c{i}")
            for i in range(len(threads))
        ),
        return_exceptions=True,
    )


def _assert_runs_never_interleave(events: list[dict[str, Any]]) -> None:
    """Per thread: seq is 1..n with no gap or duplicate, and each run's events are contiguous."""
    by_thread: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_thread.setdefault(event["thread_id"], []).append(event)
    for thread, evs in by_thread.items():
        evs.sort(key=lambda e: e["seq"])
        assert [e["seq"] for e in evs] == list(range(1, len(evs) + 1)), thread
        finished: set[str] = set()
        current = None
        for e in evs:
            if e["run_id"] != current:
                assert e["run_id"] not in finished, f"run {e['run_id']} resumed after another"
                assert e["type"] == "agent_started"
                if current is not None:
                    finished.add(current)
                current = e["run_id"]
        assert evs[-1]["type"] == "agent_completed"


async def _ledger_balance(url: str, user: UserID) -> tuple[int, int, int]:
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT a.balance, a.initial, (SELECT coalesce(sum(amount), 0) FROM ledger l "
            "WHERE l.user_id = a.user_id AND NOT l.refunded) AS spent "
            "FROM accounts a WHERE a.user_id = $1",
            user,
        )
        return int(row["balance"]), int(row["initial"]), int(row["spent"])
    finally:
        await conn.close()


@pytest.mark.parametrize("thread_count", [1, N])
async def test_concurrent_submits_on_two_workers(
    start_runtime: StartRuntime, recorder: Recorder, thread_count: int
) -> None:
    workers = [await start_runtime(), await start_runtime()]
    threads = [f"th-{i % thread_count}" for i in range(N)]
    results = await _submit_all(workers, threads)
    assert all(isinstance(r, Submitted) for r in results), results
    await recorder.wait_completed(N)

    completed = recorder.of_type("agent_completed")
    assert {e["status"] for e in completed} == {"completed"}
    assert {e["run_id"] for e in completed} == {
        r.run_id for r in results if isinstance(r, Submitted)
    }
    _assert_runs_never_interleave([e for _, e in recorder.events])
    if thread_count == 1:
        # FIFO per thread: runs start in the order their messages were stored.
        started = sorted(recorder.of_type("agent_started"), key=lambda e: e["seq"])
        stored = await workers[0].messages(ALICE, ThreadID(threads[0]))
        assert [e["run_id"] for e in started] == [
            m["run_id"] for m in stored if m["role"] == "user"
        ]
    balance, initial, spent = await _ledger_balance(workers[0].settings.database_url, ALICE)
    assert spent == N
    assert balance == initial - spent >= 0
    stats = [await w.stats() for w in workers]
    assert sum(s["runs_completed_total"] for s in stats) == N


async def test_low_balance_accepts_exactly_what_it_can_pay(start_runtime: StartRuntime) -> None:
    workers = [
        await start_runtime(claim_runs=False, initial_credits=7, run_cost=2),
        await start_runtime(claim_runs=False, initial_credits=7, run_cost=2),
    ]
    results = await _submit_all(workers, [f"th-{i}" for i in range(N)])
    accepted = [r for r in results if isinstance(r, Submitted)]
    refused = [r for r in results if isinstance(r, InsufficientCredits)]
    assert len(accepted) == 7 // 2
    assert len(refused) == N - len(accepted)
    balance, initial, spent = await _ledger_balance(workers[0].settings.database_url, ALICE)
    assert (balance, initial, spent) == (1, 7, 6)
    assert (await workers[0].stats())["runs_queued"] == len(accepted)


async def test_naive_billing_fault_loses_updates(start_runtime: StartRuntime) -> None:
    """The deliberate defect must be observable, or the harness could not prove it catches it."""
    workers = [
        await start_runtime(claim_runs=False, faults="naive_billing"),
        await start_runtime(claim_runs=False, faults="naive_billing"),
    ]
    await workers[0].account(ALICE)  # the account exists before the race
    results = await _submit_all(workers, [f"th-{i}" for i in range(N)])
    assert all(isinstance(r, Submitted) for r in results), results
    balance, initial, spent = await _ledger_balance(workers[0].settings.database_url, ALICE)
    assert spent == N
    assert balance > initial - spent, "concurrent naive debits should have lost updates"
