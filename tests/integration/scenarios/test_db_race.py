"""db_race against a real PostgreSQL: safe strategies hold, naive is caught."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import pytest

from squall.checks.history import OpType, pair_ops
from squall.scenarios.db_race import (
    TABLE_COLUMNS,
    Contention,
    Strategy,
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
