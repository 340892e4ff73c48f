"""db_race against a real PostgreSQL: safe strategies hold, naive is caught."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg
import pytest

from squall.checks.history import OpType, pair_ops
from squall.scenarios.db_race import (
    TABLE_COLUMNS,
    Contention,
    Outcome,
    Strategy,
    account_ledger,
    create_account,
    debit_once,
    ensure_schema,
    run_db_race,
    table_rows,
)
from squall.store.history_log import HistoryLog, read_history

pytestmark = pytest.mark.integration

SAFE = [s for s in Strategy if s.safe]


async def test_all_strategies_safe_ones_hold_and_naive_is_caught(
    pg_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "history.jsonl"
    with HistoryLog(path) as log:
        report = await run_db_race(pg_url, writers=20, subops=3, history=log)
    assert report.valid, json.dumps(report.to_dict(), indent=1)[:4000]
    for strategy in SAFE:
        s = report.strategy(strategy)
        assert s.tally.violations == 0, s.to_dict()
        assert all(v.valid is True for v in s.verdicts), [v.summary for v in s.verdicts]
        assert s.ops_ok == 20  # the balance covers every debit: all must commit once
        assert s.lost_updates == 0
    naive = report.strategy(Strategy.NAIVE)
    assert naive.caught is True
    assert naive.lost_updates > 0
    lost = next(e for v in naive.verdicts for e in v.evidence if e.kind == "lost-update")
    assert len(lost.ops) >= 2
    assert {op.get("read_version") for op in lost.ops} == {lost.details["read_version"]}
    # Every attempt reached history.jsonl, and conflicts there match the report.
    ops = read_history(path)
    assert [op.index for op in ops] == list(range(len(ops)))
    optimistic = [p for p in pair_ops(ops, fs={"debit"}) if p.process.startswith("optimistic/")]
    conflicts = [p for p in optimistic if p.get("reason") == "version-conflict"]
    assert len(conflicts) == report.strategy(Strategy.OPTIMISTIC).tally.detected
    assert sum(1 for p in optimistic if p.outcome is OpType.OK) == 20
    # The report serialises and renders one row per strategy.
    json.dumps(report.to_dict())
    rows = table_rows(report)
    assert [r[0] for r in rows] == [s.value for s in Strategy]
    assert all(len(r) == len(TABLE_COLUMNS) for r in rows)
    assert rows[-1][-1] == "caught"


async def test_naive_at_full_contention_loses_all_but_one_update(pg_url: str) -> None:
    report = await run_db_race(
        pg_url,
        writers=3,
        strategies=[Strategy.NAIVE],
        naive_contention=Contention.BARRIER,
    )
    [naive] = report.strategies
    [round_] = naive.rounds
    assert round_.writers == 6
    assert round_.contention is Contention.BARRIER
    assert naive.lost_updates == 5  # every writer read version 0 before anyone wrote
    kinds = {e.kind for v in naive.verdicts for e in v.evidence}
    assert kinds == {"lost-update", "balance-too-high"}


async def test_scarce_funds_are_never_overdrawn(pg_url: str) -> None:
    report = await run_db_race(
        pg_url, writers=8, subops=4, initial_balance=50, amount=10, strategies=SAFE
    )
    for s in report.strategies:
        assert s.valid, s.to_dict()
        assert s.ops_ok == 5, s.strategy
        [round_] = s.rounds
        assert round_.ops_failed >= 3
    conn = await asyncpg.connect(pg_url)
    try:
        balances = await conn.fetch(
            "SELECT label, balance FROM test_accounts WHERE label LIKE ANY($1::text[])",
            [f"{s.value}/%" for s in SAFE],
        )
    finally:
        await conn.close()
    assert balances
    assert min(r["balance"] for r in balances) >= 0


async def test_bad_arguments_name_the_fix(pg_url: str) -> None:
    with pytest.raises(ValueError, match="subops=1"):
        await run_db_race(pg_url, subops=1)
    with pytest.raises(ValueError, match="writers=1"):
        await run_db_race(pg_url, writers=1)


@pytest.mark.parametrize("strategy", SAFE)
async def test_debit_once_on_a_hot_account_charges_each_operation_once(
    pg_url: str, strategy: Strategy
) -> None:
    """Writers looping one strategy's debits on one account, retrying conflicts with the
    same operation id: the ledger holds exactly the committed debits."""
    writers, per_writer, initial = 6, 15, 10_000
    pool = await asyncpg.create_pool(pg_url, min_size=writers, max_size=writers)
    try:
        async with pool.acquire() as conn:
            await ensure_schema(conn)
            account = await create_account(conn, f"hot/{strategy.value}", initial)
        conflicts = [0]

        async def writer(index: int) -> int:
            committed = 0
            async with pool.acquire() as conn:
                for k in range(per_writer):
                    for _ in range(500):
                        outcome = await debit_once(
                            conn, strategy, account, f"{index}/{k}", amount=3
                        )
                        if outcome is Outcome.COMMITTED:
                            committed += 1
                            break
                        assert outcome is Outcome.CONFLICT
                        conflicts[0] += 1
            return committed

        committed = sum(await asyncio.gather(*(writer(i) for i in range(writers))))
        async with pool.acquire() as conn:
            ledger = await account_ledger(conn, account)
    finally:
        await pool.close()
    assert committed == writers * per_writer
    assert ledger.holds(initial=initial, committed=committed, amount=3), ledger
    assert ledger.balance == initial - 3 * committed
    if strategy is Strategy.ATOMIC or strategy is Strategy.ROW_LOCK:
        assert conflicts[0] == 0  # they wait for the row instead of failing


async def test_debit_once_refuses_what_the_balance_cannot_cover(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        await ensure_schema(conn)
        for strategy in SAFE:
            account = await create_account(conn, f"scarce/{strategy.value}", 5)
            assert await debit_once(conn, strategy, account, "a", amount=3) is Outcome.COMMITTED
            assert await debit_once(conn, strategy, account, "b", amount=3) is Outcome.REFUSED
            ledger = await account_ledger(conn, account)
            assert (ledger.balance, ledger.rows, ledger.debited) == (2, 1, 3), strategy
            assert ledger.holds(initial=5, committed=1, amount=3)
            assert not ledger.holds(initial=5, committed=2, amount=3)
        with pytest.raises(LookupError, match="not in test_accounts"):
            await account_ledger(conn, -1)
        with pytest.raises(ValueError, match="'sloppy' is not a valid Strategy"):
            await debit_once(conn, "sloppy", account, "c")
    finally:
        await conn.close()


async def test_a_naive_loop_on_a_hot_account_is_caught_by_the_ledger(pg_url: str) -> None:
    """The same loop with the naive strategy loses updates, and the ledger check says so."""
    pool = await asyncpg.create_pool(pg_url, min_size=2, max_size=8)
    try:
        async with pool.acquire() as conn:
            await ensure_schema(conn)
            account = await create_account(conn, "hot/naive", 10_000)
        gate = asyncio.Barrier(8)

        async def writer(index: int) -> int:
            async with pool.acquire() as conn:
                await gate.wait()
                for k in range(30):
                    await debit_once(conn, Strategy.NAIVE, account, f"{index}/{k}", amount=1)
            return 30

        committed = sum(await asyncio.gather(*(writer(i) for i in range(8))))
        async with pool.acquire() as conn:
            ledger = await account_ledger(conn, account)
    finally:
        await pool.close()
    assert ledger.rows == committed == 240
    assert ledger.balance > 10_000 - committed  # lost updates: the balance fell by less
    assert not ledger.holds(initial=10_000, committed=committed, amount=1)
