"""Fairness: with equal demand, every user gets an equal share and nobody starves.

Runs are ``run`` operations invoked with ``{"user": ...}``; a user's *wait*
for a run is from its invoke to its completion (or to the end of the history
if it never completed ``ok``/``fail``). Jain's index ``(Σx)² / (n·Σx²)`` is 1
for a perfectly even share and ``1/n`` when one user gets everything. It is
applied to each user's completed share (completed ÷ demanded, which is the
completed count when demand is equal) and to each user's mean wait.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from squall.checks.history import JsonValue, Op, OpPair, OpType, pair_ops
from squall.checks.verdict import Evidence, Verdict, verdict_from

DEFAULT_MIN_INDEX = 0.9


def jain_index(values: Sequence[float]) -> float:
    """Jain's fairness index of ``values``; 1.0 for none or all zero (nothing to share)."""
    total = sum(values)
    squares = sum(v * v for v in values)
    if not values or squares == 0:
        return 1.0
    return total * total / (len(values) * squares)


@dataclass(frozen=True, slots=True)
class UserShare:
    """What one user asked for, got, and waited."""

    user: str
    demanded: int
    completed: int
    mean_wait_ns: float | None
    max_wait_ns: int

    @property
    def ratio(self) -> float:
        return self.completed / self.demanded if self.demanded else 0.0

    def to_dict(self) -> dict[str, JsonValue]:
        return {
            "user": self.user,
            "demanded": self.demanded,
            "completed": self.completed,
            "mean_wait_ns": self.mean_wait_ns,
            "max_wait_ns": self.max_wait_ns,
        }


def _wait_end(run: OpPair, end_ns: int) -> int:
    if run.outcome in (OpType.OK, OpType.FAIL) and run.end_ns is not None:
        return run.end_ns
    return end_ns


def user_shares(runs: Sequence[OpPair], *, user_key: str, end_ns: int) -> list[UserShare]:
    """Per-user demand, completions and waits, sorted by user."""
    by_user: dict[str, list[OpPair]] = defaultdict(list)
    for run in runs:
        by_user[run.str_value(user_key)].append(run)
    shares = []
    for user, mine in sorted(by_user.items()):
        done = [r for r in mine if r.outcome is OpType.OK]
        waits = [_wait_end(r, end_ns) - r.start_ns for r in mine]
        done_waits = [_wait_end(r, end_ns) - r.start_ns for r in done]
        mean = sum(done_waits) / len(done_waits) if done_waits else None
        shares.append(UserShare(user, len(mine), len(done), mean, max(waits)))
    return shares


def check_fairness(
    ops: Sequence[Op],
    *,
    f: str = "run",
    user_key: str = "user",
    min_index: float = DEFAULT_MIN_INDEX,
    max_wait_ns: int | None = None,
    end_ns: int | None = None,
) -> Verdict:
    """Jain's index of completed share and of mean wait ≥ ``min_index``; no starvation.

    A user is starved when one of its runs waited longer than ``max_wait_ns``
    while other users' runs completed. ``end_ns`` (default: the last record's
    time) closes the waits of runs that never finished. Not applicable with
    fewer than two users, or when no run completed.
    """
    runs = pair_ops(ops, fs={f})
    end = end_ns if end_ns is not None else max((op.time_ns for op in ops), default=0)
    shares = user_shares(runs, user_key=user_key, end_ns=end)
    table: list[JsonValue] = [s.to_dict() for s in shares]
    completed_index = jain_index([s.ratio for s in shares])
    mean_waits = [s.mean_wait_ns for s in shares if s.mean_wait_ns is not None]
    wait_index = jain_index(mean_waits)
    evidence: list[Evidence] = []
    if len(shares) >= 2 and completed_index < min_index:
        worst = min(shares, key=lambda s: s.ratio)
        evidence.append(
            Evidence(
                "unfair-share",
                f"Jain index of completed runs {completed_index:.3f} < {min_index}; "
                f"{worst.user} completed {worst.completed} of {worst.demanded}",
                details={"index": completed_index, "starved": worst.user, "users": table},
            )
        )
    if len(mean_waits) >= 2 and wait_index < min_index:
        worst = max(shares, key=lambda s: s.mean_wait_ns or 0.0)
        evidence.append(
            Evidence(
                "unfair-wait",
                f"Jain index of mean waits {wait_index:.3f} < {min_index}; "
                f"{worst.user} waited {(worst.mean_wait_ns or 0) / 1e6:.3f} ms on average",
                details={"index": wait_index, "starved": worst.user, "users": table},
            )
        )
    if max_wait_ns is not None:
        evidence.extend(_starvation(runs, user_key, max_wait_ns, end, table))
    completed = sum(s.completed for s in shares)
    if len(shares) < 2:
        summary = f"{len(shares)} user(s): fairness needs at least two"
    elif not completed:
        # All-zero shares are "equal" (index 1.0), which judged nothing.
        summary = f"{len(shares)} users, no run completed: nothing was shared"
    else:
        summary = (
            f"{len(shares)} users, Jain index {completed_index:.3f} (completed), "
            f"{wait_index:.3f} (mean wait)"
        )
    return verdict_from(
        "fairness",
        evidence=evidence,
        counts={"users": len(shares), "runs": len(runs)},
        ok_summary=summary,
        applicable=len(shares) >= 2 and completed > 0,
    )


def _starvation(
    runs: Sequence[OpPair], user_key: str, bound_ns: int, end_ns: int, table: list[JsonValue]
) -> list[Evidence]:
    """Runs that waited past ``bound_ns`` while some other user's run completed ok.

    A completion at the same instant as the run's own does not count: it did
    not happen *while* the run waited.
    """
    completions = [
        (r.str_value(user_key), r.end_ns)
        for r in runs
        if r.outcome is OpType.OK and r.end_ns is not None
    ]
    found = []
    for run in runs:
        user = run.str_value(user_key)
        until = _wait_end(run, end_ns)
        waited = until - run.start_ns
        if waited <= bound_ns:
            continue
        finished = run.outcome in (OpType.OK, OpType.FAIL)
        others = sum(
            1
            for u, t in completions
            if u != user and run.start_ns < t and (t < until or (t == until and not finished))
        )
        if others:
            found.append(
                Evidence(
                    "starvation",
                    f"{user} waited {waited / 1e6:.3f} ms (bound {bound_ns / 1e6:.3f} ms) "
                    f"for {run.invoke.describe()} while {others} other runs completed",
                    ops=run.ops,
                    details={
                        "starved": user,
                        "waited_ns": waited,
                        "bound_ns": bound_ns,
                        "others_completed": others,
                        "users": table,
                    },
                )
            )
    return found
