"""Verdicts: what a checker concluded, with the operations that prove it.

A verdict never says just "failed": each broken invariant comes with
:class:`Evidence` naming the conflicting operations, so a reader can find them
in ``history.jsonl``. ``valid`` is ``None`` when the checker had nothing to
judge (e.g. no events at all): "not applicable" is not "passed".

:class:`RaceTally` holds the three words squall uses for races:

- *detected*: a conflict the system saw and handled (optimistic-lock failure,
  serialization failure, lock contention);
- *prevented*: a detected conflict resolved with no invariant broken;
- *violation*: a broken invariant. Any violation fails the run, whatever the
  tolerance; ``max_race_conditions_tolerated`` counts only detected races that
  were not prevented.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from squall.checks.history import EVENTS_CUT, EVENTS_UNRECORDED, JsonValue, Op, json_int

MAX_EVIDENCE = 20
"""Evidence items kept per verdict; ``counts`` always has the full number."""


@dataclass(frozen=True, slots=True)
class Evidence:
    """One broken invariant: what kind, in words, the operations, and the numbers."""

    kind: str
    message: str
    ops: tuple[Op, ...] = ()
    details: Mapping[str, JsonValue] = field(default_factory=dict)

    def to_dict(self) -> dict[str, JsonValue]:
        return {
            "kind": self.kind,
            "message": self.message,
            "ops": [op.to_dict() for op in self.ops],
            "details": dict(self.details),
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    """A checker's conclusion. ``counts["violations"]`` is the number of broken invariants."""

    checker: str
    valid: bool | None
    summary: str
    counts: Mapping[str, int] = field(default_factory=dict)
    evidence: tuple[Evidence, ...] = ()

    @property
    def violations(self) -> int:
        return self.counts.get("violations", 0)

    def to_dict(self) -> dict[str, JsonValue]:
        return {
            "checker": self.checker,
            "valid": self.valid,
            "summary": self.summary,
            "counts": dict(self.counts),
            "evidence": [e.to_dict() for e in self.evidence],
        }


def verdict_from(
    checker: str,
    *,
    evidence: list[Evidence],
    counts: Mapping[str, int],
    ok_summary: str,
    applicable: bool = True,
) -> Verdict:
    """Build a verdict: invalid iff there is evidence; evidence capped at :data:`MAX_EVIDENCE`."""
    full = {**counts, "violations": counts.get("violations", len(evidence))}
    if not applicable:
        return Verdict(checker, None, f"not applicable: {ok_summary}", full)
    if not evidence:
        return Verdict(checker, True, ok_summary, full)
    kinds = sorted({e.kind for e in evidence})
    summary = f"{full['violations']} violation(s): {', '.join(kinds)}; first: {evidence[0].message}"
    return Verdict(checker, False, summary, full, tuple(evidence[:MAX_EVIDENCE]))


def cut_evidence(ops: Iterable[Op], *, event_f: str = "event") -> tuple[list[Evidence], int]:
    """``history-cut`` evidence for each socket that stopped recording its ``event_f``
    records past its bound (:data:`~squall.checks.history.EVENTS_CUT`), and how many events
    went unrecorded, all told (:data:`~squall.checks.history.EVENTS_UNRECORDED`).

    A checker of those events judges what was recorded; the events after a cut it never
    saw, so it cannot pass on them: each cut is a violation of its own, never a pass by
    omission."""
    cuts: dict[str, Op] = {}
    unrecorded: dict[str, int] = {}
    for op in sorted(ops, key=lambda o: o.index):
        if op.get("of", event_f) != event_f:
            continue
        if op.f == EVENTS_CUT:
            cuts.setdefault(op.process, op)
        elif op.f == EVENTS_UNRECORDED:
            unrecorded[op.process] = unrecorded.get(op.process, 0) + max(
                0, json_int(op.get("events")) or 0
            )
    evidence = []
    for socket in sorted(cuts.keys() | unrecorded.keys()):
        cut = cuts.get(socket)
        recorded = json_int(cut.get("recorded")) if cut is not None else None
        missed = unrecorded.get(socket)
        evidence.append(
            Evidence(
                "history-cut",
                f"socket {socket} received more events than the history keeps of one "
                f"socket: the history was cut after {recorded if recorded is not None else 'some'} "
                f"of them and {missed if missed is not None else 'the rest'} more were not "
                "recorded, so they were not judged",
                ops=(cut,) if cut is not None else (),
                details={"socket": socket, "recorded": recorded, "unrecorded": missed},
            )
        )
    return evidence, sum(unrecorded.values())


def combine(verdicts: Iterable[Verdict]) -> bool | None:
    """False if any verdict failed, None if none applied, else True."""
    seen = [v.valid for v in verdicts]
    if any(v is False for v in seen):
        return False
    if all(v is None for v in seen):
        return None
    return True


@dataclass(frozen=True, slots=True)
class RaceTally:
    """Races detected, prevented, and invariants violated (see the module docstring)."""

    detected: int = 0
    prevented: int = 0
    violations: int = 0

    def __post_init__(self) -> None:
        if min(self.detected, self.prevented, self.violations) < 0:
            raise ValueError(f"{self!r}: counts cannot be negative")
        if self.prevented > self.detected:
            raise ValueError(
                f"{self!r}: prevented ({self.prevented}) cannot exceed detected "
                f"({self.detected}); only a detected race can be prevented"
            )

    @property
    def unprevented(self) -> int:
        return self.detected - self.prevented

    def __add__(self, other: RaceTally) -> RaceTally:
        return RaceTally(
            self.detected + other.detected,
            self.prevented + other.prevented,
            self.violations + other.violations,
        )

    def passes(self, max_race_conditions_tolerated: int) -> bool:
        """No violation at all, and at most the tolerated number of unprevented races."""
        return self.violations == 0 and self.unprevented <= max_race_conditions_tolerated

    def to_dict(self) -> dict[str, JsonValue]:
        return {
            "detected": self.detected,
            "prevented": self.prevented,
            "unprevented": self.unprevented,
            "violations": self.violations,
        }
