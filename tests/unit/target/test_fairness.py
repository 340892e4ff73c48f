from __future__ import annotations

from squall.target.fairness import Candidate, fair_order


def cand(run: str, user: str, pos: int, running: int = 0, last: float | None = None) -> Candidate:
    return Candidate(run, user, f"thread-{run}", pos, running, last)


def test_heavy_user_does_not_starve_light_user() -> None:
    heavy = [cand(f"a{i}", "alice", i, running=2, last=100.0) for i in range(50)]
    light = cand("b0", "bob", 99, running=0, last=None)
    order = fair_order([*heavy, light], now=200.0)
    assert order[0] == light
    assert [c.run_id for c in order[1:4]] == ["a0", "a1", "a2"]


def test_batch_alternates_between_users() -> None:
    cands = [cand("a0", "a", 0), cand("a1", "a", 1), cand("a2", "a", 2), cand("b0", "b", 3)]
    assert [c.run_id for c in fair_order(cands, now=10.0)] == ["a0", "b0", "a1", "a2"]


def test_least_recent_start_breaks_ties_then_age() -> None:
    cands = [
        cand("recent", "r", 0, running=1, last=50.0),
        cand("stale", "s", 1, running=1, last=10.0),
        cand("busy", "x", 2, running=3, last=1.0),
    ]
    assert [c.run_id for c in fair_order(cands, now=60.0)] == ["stale", "recent", "busy"]


def test_empty() -> None:
    assert fair_order([], now=0.0) == []
