"""Mutual exclusion: no two holders of one lock are in their critical sections at once.

A holder's critical section runs from its ``acquire`` completing ``ok`` to its
``release`` being invoked (a section never released runs to the end of the
history). Writes it makes while holding the lock are ``write`` operations.

An overlap is *fenced* (prevented) when the later holder carries a higher
fencing ``token`` and every write the earlier holder made that could have
landed after the later one acquired was rejected (completed ``fail``). Any
other overlap is a violation. Expected records, all with ``{"key": ...}``:

- ``acquire`` invoke → ``ok`` with ``{"token": n}`` (``null`` without fencing);
- ``write`` invoke with ``{"token": n}`` → ``ok`` (accepted) or ``fail`` (rejected);
- ``release`` invoke → ``ok`` or ``fail`` (the lock was no longer ours).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from squall.checks.history import JsonValue, Op, OpPair, OpType, pair_ops
from squall.checks.verdict import Evidence, Verdict, verdict_from


@dataclass(slots=True)
class Section:
    """One holder's time in the critical section, its fencing token, and its writes."""

    process: str
    acquired: Op
    released: Op | None
    start_ns: int
    end_ns: int
    token: int | None
    writes: list[OpPair] = field(default_factory=list)

    def to_dict(self) -> dict[str, JsonValue]:
        return {
            "process": self.process,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "token": self.token,
            "released": self.released is not None,
        }


def _token(pair: OpPair, token_key: str) -> int | None:
    return None if pair.get(token_key) is None else pair.int_value(token_key)


def critical_sections(
    ops: Sequence[Op],
    *,
    key: str | None = None,
    key_key: str = "key",
    acquire_f: str = "acquire",
    release_f: str = "release",
    write_f: str = "write",
    token_key: str = "token",
) -> list[Section]:
    """Each successful acquire's section, with the writes its process made inside it."""
    history_end = max((op.time_ns for op in ops), default=0)
    pairs = [
        p
        for p in pair_ops(ops, fs={acquire_f, release_f, write_f})
        if key is None or p.invoke.get(key_key) == key
    ]
    open_by_process: dict[str, Section] = {}
    sections: list[Section] = []
    for pair in pairs:
        current = open_by_process.get(pair.process)
        if pair.f == acquire_f and pair.outcome is OpType.OK and pair.completion is not None:
            section = Section(
                pair.process,
                pair.completion,
                None,
                pair.completion.time_ns,
                history_end,
                _token(pair, token_key),
            )
            open_by_process[pair.process] = section
            sections.append(section)
        elif pair.f == write_f and current is not None:
            current.writes.append(pair)
        elif pair.f == release_f and current is not None:
            current.released = pair.invoke
            current.end_ns = pair.start_ns
            del open_by_process[pair.process]
    return sections


def check_locks(
    ops: Sequence[Op],
    *,
    key: str | None = None,
    key_key: str = "key",
    acquire_f: str = "acquire",
    release_f: str = "release",
    write_f: str = "write",
    token_key: str = "token",
) -> Verdict:
    """No unfenced overlap of critical sections on ``key`` (all keys if None).

    Evidence names both holders with their intervals and tokens, and the
    earlier holder's writes that were accepted during the overlap.
    """
    sections = sorted(
        critical_sections(
            ops,
            key=key,
            key_key=key_key,
            acquire_f=acquire_f,
            release_f=release_f,
            write_f=write_f,
            token_key=token_key,
        ),
        key=lambda s: s.start_ns,
    )
    evidence: list[Evidence] = []
    overlaps = fenced = rejected = 0
    for i, earlier in enumerate(sections):
        for later in sections[i + 1 :]:
            if later.start_ns >= earlier.end_ns:
                break
            if later.process == earlier.process:
                continue
            overlaps += 1
            # A section never released runs to the history's end; a write it began there
            # (the history's last record, never answered) is inside it all the same.
            stale = [
                w
                for w in earlier.writes
                if (w.end_ns is None or w.end_ns > later.start_ns)
                and (earlier.released is None or w.start_ns < earlier.end_ns)
            ]
            accepted = [w for w in stale if w.outcome is not OpType.FAIL]
            higher = (
                later.token is not None
                and earlier.token is not None
                and later.token > earlier.token
            )
            if higher and not accepted:
                fenced += 1
                rejected += len(stale)
                continue
            # ``later`` may lie wholly inside ``earlier`` (a stale holder's long section).
            overlap_ns = min(earlier.end_ns, later.end_ns) - later.start_ns
            why = (
                "without fencing tokens"
                if later.token is None or earlier.token is None
                else f"token {later.token} not above {earlier.token}"
                if not higher
                else f"{len(accepted)} stale write(s) accepted"
            )
            evidence.append(
                Evidence(
                    "overlap",
                    f"{earlier.process} (token {earlier.token}) and {later.process} "
                    f"(token {later.token}) both held the lock for "
                    f"{overlap_ns / 1e6:.3f} ms, {why}",
                    ops=(
                        earlier.acquired,
                        later.acquired,
                        *(op for w in accepted for op in w.ops),
                    ),
                    details={
                        "earlier": earlier.to_dict(),
                        "later": later.to_dict(),
                        "overlap_ns": overlap_ns,
                        "stale_writes_accepted": len(accepted),
                    },
                )
            )
    return verdict_from(
        "locks",
        evidence=evidence,
        counts={
            "sections": len(sections),
            "overlaps": overlaps,
            "fenced_overlaps": fenced,
            "stale_writes_rejected": rejected,
        },
        ok_summary=(
            f"{len(sections)} critical sections, {overlaps} overlap(s) all fenced"
            if sections
            else "no lock was acquired"
        ),
        applicable=bool(sections),
    )
