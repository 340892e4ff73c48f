"""Which queued run a worker claims next (pure: no I/O).

A user with 50 queued runs must not starve a user with one. Candidates (the oldest
queued run of each idle thread) are ordered by the owner's running-run count, then by
the owner's least recent run start (never started first), then by age. Picking is
simulated one run at a time, so after a user is picked their count rises and their last
start becomes "now": a batch of free slots is spread across users instead of going to
whoever has the most queued work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    run_id: str
    user_id: str
    thread_id: str
    #: Creation order of the run (smaller is older).
    position: int
    #: Runs of this user running now, on any worker.
    user_running: int
    #: Unix time of this user's most recent run start; ``None`` if never started.
    user_last_start: float | None


def fair_order(candidates: Sequence[Candidate], now: float) -> list[Candidate]:
    """All ``candidates`` in the order a worker should try to claim them."""
    running = {c.user_id: c.user_running for c in candidates}
    last = {c.user_id: c.user_last_start for c in candidates}
    remaining = sorted(candidates, key=lambda c: c.position)
    ordered: list[Candidate] = []

    def key(c: Candidate) -> tuple[int, bool, float, int]:
        started = last[c.user_id]
        return (running[c.user_id], started is not None, started or 0.0, c.position)

    while remaining:
        best = min(remaining, key=key)
        remaining.remove(best)
        ordered.append(best)
        running[best.user_id] += 1
        previous = last[best.user_id]
        last[best.user_id] = now if previous is None else max(now, previous)
    return ordered
