"""Fairness checker: Jain's index of shares and waits, and starvation."""

from __future__ import annotations

import json

import pytest

from squall.checks.fairness import check_fairness, jain_index
from squall.checks.history import HistoryRecorder, Op


class Runs:
    """Runs with explicit invoke and completion times."""

    def __init__(self) -> None:
        self.now = 0
        self.rec = HistoryRecorder(clock=lambda: self.now)

    def run(self, user: str, n: int, start: int, end: int | None, outcome: str = "ok") -> Runs:
        self.now = start
        op = self.rec.invoke(f"{user}-{n}", "run", {"user": user})
        if end is not None:
            self.now = end
            getattr(self.rec, outcome)(op)
        return self

    @property
    def ops(self) -> tuple[Op, ...]:
        return self.rec.ops


def test_jain_index_extremes() -> None:
    assert jain_index([3, 3, 3]) == 1.0
    assert jain_index([1, 0, 0, 0]) == pytest.approx(0.25)
    assert jain_index([]) == 1.0
    assert jain_index([0, 0]) == 1.0


def test_equal_shares_and_waits_pass() -> None:
    runs = Runs()
    for n in range(3):
        runs.run("alice", n, n * 10, n * 10 + 5).run("bob", n, n * 10 + 1, n * 10 + 6)
    verdict = check_fairness(runs.ops, max_wait_ns=10)
    assert verdict.valid is True
    assert verdict.counts["users"] == 2


def test_uneven_completions_name_the_starved_user() -> None:
    runs = Runs()
    for n in range(4):
        runs.run("alice", n, n * 10, n * 10 + 5)
    runs.run("bob", 0, 0, 5).run("bob", 1, 0, None).run("bob", 2, 0, 3, "fail")
    runs.run("bob", 3, 0, 4, "fail")
    verdict = check_fairness(runs.ops)
    assert verdict.valid is False
    unfair = next(e for e in verdict.evidence if e.kind == "unfair-share")
    assert unfair.details["starved"] == "bob"
    users = {u["user"]: u for u in json.loads(json.dumps(unfair.details["users"]))}
    assert users["bob"]["completed"] == 1
    assert users["alice"]["completed"] == 4


def test_uneven_waits_are_unfair_even_when_all_complete() -> None:
    runs = Runs()
    for n in range(3):
        runs.run("alice", n, 0, 1).run("bob", n, 0, 100)
    verdict = check_fairness(runs.ops)
    assert verdict.valid is False
    assert [e.kind for e in verdict.evidence] == ["unfair-wait"]
    assert verdict.evidence[0].details["starved"] == "bob"


def test_starvation_waits_past_the_bound_while_others_complete() -> None:
    runs = Runs().run("bob", 0, 0, None)
    for n in range(5):
        runs.run("alice", n, n * 10, n * 10 + 5)
    verdict = check_fairness(runs.ops, max_wait_ns=20, min_index=0.0)
    assert verdict.valid is False
    [starved] = verdict.evidence
    assert starved.kind == "starvation"
    assert starved.details["starved"] == "bob"
    assert starved.details["others_completed"] == 5
    assert starved.details["waited_ns"] == 45


def test_a_long_wait_while_nobody_completes_is_not_starvation() -> None:
    runs = Runs().run("alice", 0, 0, 100).run("bob", 0, 0, 100)
    assert check_fairness(runs.ops, max_wait_ns=10).valid is True


def test_single_user_is_not_applicable() -> None:
    assert check_fairness(Runs().run("alice", 0, 0, 1).ops).valid is None


def test_no_completed_run_judges_nothing() -> None:
    # Every share is 0 of n: "equal" by Jain's index, but nothing was shared.
    runs = Runs().run("alice", 0, 0, None).run("bob", 0, 1, 5, "fail").run("bob", 1, 2, None)
    verdict = check_fairness(runs.ops)
    assert verdict.valid is None
    assert verdict.summary == "not applicable: 2 users, no run completed: nothing was shared"


def test_a_run_that_timed_out_on_the_client_is_still_waiting() -> None:
    # a0's answer never came (info at 10): it waited on while b ran twice.
    from squall.checks.history import OpType

    ops = [
        Op(0, OpType.INVOKE, "a0", "run", 0, {"user": "a"}),
        Op(1, OpType.INVOKE, "b0", "run", 0, {"user": "b"}),
        Op(2, OpType.INFO, "a0", "run", 10, {"user": "a"}),
        Op(3, OpType.OK, "b0", "run", 500, {"user": "b"}),
        Op(4, OpType.INVOKE, "b1", "run", 900, {"user": "b"}),
        Op(5, OpType.OK, "b1", "run", 1000, {"user": "b"}),
    ]
    verdict = check_fairness(ops, max_wait_ns=100, min_index=0.0)
    assert verdict.valid is False
    assert "starvation" in [e.kind for e in verdict.evidence]


def _runs(*runs: tuple[str, int, int, bool]) -> list[Op]:
    from squall.checks.history import OpType

    ops: list[Op] = []
    for n, (user, start, end, ok) in enumerate(runs):
        ops.append(Op(len(ops), OpType.INVOKE, f"{user}{n}", "run", start, {"user": user}))
        done = OpType.OK if ok else OpType.FAIL
        ops.append(Op(len(ops), done, f"{user}{n}", "run", end, {"user": user}))
    return ops


def test_a_jain_index_at_the_minimum_passes() -> None:
    # Completion ratios 2/2 and 1/2: a Jain index of exactly 0.9, the default minimum.
    ops = _runs(("a", 0, 10, True), ("a", 0, 10, True), ("b", 0, 10, True), ("b", 0, 10, False))
    assert check_fairness(ops).valid is True


def test_a_wait_at_the_limit_and_one_from_a_completion_at_its_start_pass() -> None:
    from squall.checks.history import OpType

    def run(n: int, kind: OpType, user: str, at: int) -> Op:
        return Op(n, kind, f"{user}0", "run", at, {"user": user})

    go, done = OpType.INVOKE, OpType.OK
    # a waits exactly max_wait_ns (b's completion at 50 is no progress of a's).
    at_limit = [
        run(0, go, "a", 0),
        run(1, go, "b", 0),
        run(2, done, "b", 50),
        run(3, done, "a", 100),
    ]
    assert check_fairness(at_limit, max_wait_ns=100, min_index=0.0).valid is True
    # b completes at 50, the moment a arrives, and nobody else after: no one progressed
    # while a waited, however long it took.
    at_start = [
        run(0, go, "b", 0),
        run(1, go, "a", 50),
        run(2, done, "b", 50),
        run(3, done, "a", 500),
    ]
    assert check_fairness(at_start, max_wait_ns=100, min_index=0.0).valid is True
