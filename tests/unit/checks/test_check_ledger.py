"""Ledger checkers: histories that hold the invariants, and ones that break them."""

from __future__ import annotations

import itertools
import json

import pytest

from squall.checks.history import HistoryRecorder, OpPair, pair_ops
from squall.checks.ledger import (
    LedgerRow,
    check_balance,
    check_unique_charges,
    check_version_chain,
)
from squall.checks.verdict import MAX_EVIDENCE, RaceTally, Verdict, combine


def recorder() -> HistoryRecorder:
    ticks = itertools.count()
    return HistoryRecorder(clock=lambda: next(ticks))


def debits(*outcomes: str, amount: int = 10) -> list[OpPair]:
    """One debit per outcome: "ok", "fail", "info" (completed info) or "open" (never completed)."""
    rec = recorder()
    for i, outcome in enumerate(outcomes):
        op = rec.invoke(f"w{i}", "debit", {"amount": amount})
        if outcome != "open":
            getattr(rec, outcome)(op)
    return pair_ops(rec.ops)


def writes(*versions: tuple[int, int], failed: tuple[int, int] | None = None) -> list[OpPair]:
    """Committed writes as (read_version, written_version); one optional failed write."""
    rec = recorder()
    for i, (read, wrote) in enumerate(versions):
        rec.ok(rec.invoke(f"w{i}", "debit"), {"read_version": read, "version": wrote})
    if failed is not None:
        rec.fail(rec.invoke("loser", "debit"), {"read_version": failed[0], "version": failed[1]})
    return pair_ops(rec.ops)


def test_balance_matches_acknowledged_debits() -> None:
    verdict = check_balance(initial=100, final=80, debits=debits("ok", "ok", "fail"))
    assert verdict.valid is True
    assert verdict.counts["debits_ok"] == 2
    assert verdict.counts["debits_fail"] == 1


@pytest.mark.parametrize("final", [60, 70, 80])
def test_unknown_debits_are_bounded_both_ways(final: int) -> None:
    verdict = check_balance(initial=100, final=final, debits=debits("ok", "ok", "info", "open"))
    assert verdict.valid is True, verdict.summary


def test_lost_debit_is_caught_as_balance_too_high() -> None:
    verdict = check_balance(initial=100, final=90, debits=debits("ok", "ok"))
    assert verdict.valid is False
    [evidence] = verdict.evidence
    assert evidence.kind == "balance-too-high"
    assert evidence.details["expected_max"] == 80
    assert evidence.details["final"] == 90


def test_double_charge_is_caught_as_balance_too_low() -> None:
    verdict = check_balance(initial=100, final=60, debits=debits("ok", "info"))
    assert verdict.valid is False
    assert [e.kind for e in verdict.evidence] == ["balance-too-low"]
    assert verdict.evidence[0].details["expected_min"] == 80


def test_negative_balance_is_a_violation_even_when_it_adds_up() -> None:
    verdict = check_balance(initial=10, final=-10, debits=debits("ok", "ok"))
    assert verdict.valid is False
    assert [e.kind for e in verdict.evidence] == ["negative-balance"]


def test_unique_charges_pass_and_name_the_duplicate_rows() -> None:
    rows = [LedgerRow("1", "run-a", 5), LedgerRow("2", "run-b", 5)]
    assert check_unique_charges(rows).valid is True
    verdict = check_unique_charges([*rows, LedgerRow("3", "run-a", 5)])
    assert verdict.valid is False
    [evidence] = verdict.evidence
    assert evidence.kind == "double-charge"
    assert evidence.details["charge_id"] == "run-a"
    rows_seen = json.loads(json.dumps(evidence.details["rows"]))
    assert [r["row_id"] for r in rows_seen] == ["1", "3"]


def test_version_chain_holds_even_out_of_order_and_ignores_failed_writes() -> None:
    verdict = check_version_chain(writes((2, 3), (0, 1), (1, 2), failed=(1, 2)), initial_version=0)
    assert verdict.valid is True
    assert verdict.counts["commits"] == 3
    assert verdict.counts["lost_updates"] == 0


def test_two_commits_from_one_read_version_are_a_lost_update() -> None:
    pairs = writes((0, 1), (1, 2), (1, 2))
    verdict = check_version_chain(pairs, initial_version=0)
    assert verdict.valid is False
    assert verdict.counts["lost_updates"] == 1
    [evidence] = verdict.evidence
    assert evidence.kind == "lost-update"
    assert evidence.details["read_version"] == 1
    assert [op.process for op in evidence.ops] == ["w1", "w2"]


def test_reading_a_version_nobody_wrote_is_caught() -> None:
    verdict = check_version_chain(writes((0, 1), (5, 6)), initial_version=0)
    assert verdict.valid is False
    assert [e.kind for e in verdict.evidence] == ["phantom-version"]
    assert verdict.evidence[0].ops[0].process == "w1"


def test_a_version_a_timed_out_write_may_have_committed_is_not_a_phantom() -> None:
    rec = recorder()
    rec.ok(rec.invoke("w0", "debit"), {"read_version": 0, "version": 1})
    rec.info(rec.invoke("w1", "debit"), {"reason": "timeout"})  # it committed version 2
    rec.ok(rec.invoke("w2", "debit"), {"read_version": 2, "version": 3})
    verdict = check_version_chain(pair_ops(rec.ops), initial_version=0)
    assert verdict.valid is True, verdict.summary
    assert verdict.counts["unknown_writes"] == 1
    # One unknown write cannot account for two versions nobody committed.
    rec.ok(rec.invoke("w3", "debit"), {"read_version": 7, "version": 8})
    verdict = check_version_chain(pair_ops(rec.ops), initial_version=0)
    assert verdict.valid is False
    assert [e.details["read_version"] for e in verdict.evidence] == [2, 7]
    assert "1 write(s) of unknown outcome" in verdict.evidence[0].message


def test_combine_and_tally_rules() -> None:
    ok = Verdict("a", True, "fine")
    na = Verdict("b", None, "n/a")
    bad = Verdict("c", False, "broken", {"violations": 1})
    assert combine([ok, na]) is True
    assert combine([na]) is None
    assert combine([ok, bad]) is False
    tally = RaceTally(detected=7, prevented=5) + RaceTally(detected=1, prevented=1)
    assert tally.unprevented == 2
    assert tally.passes(2)
    assert not tally.passes(1)
    assert not RaceTally(detected=0, prevented=0, violations=1).passes(100)
    with pytest.raises(ValueError, match="only a detected race can be prevented"):
        RaceTally(detected=1, prevented=2)


def test_evidence_is_capped_but_counts_are_whole_and_serialisable() -> None:
    rows = [LedgerRow(str(i), f"run-{i // 2}", 1) for i in range(2 * (MAX_EVIDENCE + 5))]
    verdict = check_unique_charges(rows)
    assert len(verdict.evidence) == MAX_EVIDENCE
    assert verdict.violations == MAX_EVIDENCE + 5
    assert json.loads(json.dumps(verdict.to_dict()))["counts"]["violations"] == MAX_EVIDENCE + 5


def _debits(*outcomes: tuple[int, str]) -> list[OpPair]:
    clock = itertools.count()
    rec = HistoryRecorder(clock=lambda: next(clock))
    for n, (amount, outcome) in enumerate(outcomes):
        op = rec.invoke(f"c{n}", "debit", {"amount": amount})
        rec.ok(op) if outcome == "ok" else rec.fail(op)
    return pair_ops(rec.ops, fs={"debit"})


@pytest.mark.parametrize(
    ("initial", "final", "debits", "kind"),
    [
        (100, 89, [(10, "ok")], "balance-too-low"),  # one credit more than the debits took
        (10, -1, [(11, "ok")], "negative-balance"),
        # A failed debit took nothing: a balance that fell by it too is a double charge.
        (100, 80, [(10, "ok"), (10, "fail")], "balance-too-low"),
    ],
)
def test_a_balance_one_off_its_bounds_is_named(
    initial: int, final: int, debits: list[tuple[int, str]], kind: str
) -> None:
    verdict = check_balance(initial=initial, final=final, debits=_debits(*debits))
    assert verdict.valid is False
    assert kind in [e.kind for e in verdict.evidence]


def test_a_failed_write_claims_no_version() -> None:
    # Versions 1 and 8 committed from reads 0 and 7; the failed write's 2 is no evidence
    # of the versions between: 2..7 were never committed by anyone seen.
    clock = itertools.count()
    rec = HistoryRecorder(clock=lambda: next(clock))
    rec.ok(rec.invoke("c1", "write", {"read_version": 0}), {"version": 1})
    rec.ok(rec.invoke("c2", "write", {"read_version": 7}), {"version": 8})
    rec.fail(rec.invoke("c3", "write", {"read_version": 1}), {"version": 2})
    verdict = check_version_chain(pair_ops(rec.ops, fs={"write"}), initial_version=0)
    assert verdict.valid is False
    assert "phantom-version" in [e.kind for e in verdict.evidence]
