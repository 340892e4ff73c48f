"""Per-stream ordering: each socket sees each thread's events as seq, seq+1, seq+2, ...

A received event is a lone ``ok`` observation (``f="event"``, value
``{"thread": ..., "seq": n}``) by the socket's process. A socket that
reconnects and resumes records a ``resume`` marker (an ``ok`` record, alone or
completing an invoke) with ``after_seq=N``: the
next event of that thread on that socket must then be ``N+1``. Without a
marker, the first event seen on a stream sets where it starts (unless
``first_seq`` is given).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from squall.checks.history import Op, OpType
from squall.checks.verdict import Evidence, Verdict, verdict_from


@dataclass(slots=True)
class _Stream:
    expected: int | None
    last: Op | None = None
    resume: Op | None = None
    events: int = 0


def check_ordering(
    ops: Sequence[Op],
    *,
    event_f: str = "event",
    resume_f: str = "resume",
    thread_key: str = "thread",
    seq_key: str = "seq",
    after_key: str = "after_seq",
    first_seq: int | None = None,
) -> Verdict:
    """Every (socket, thread) stream is gap-free and duplicate-free, across resumes.

    Evidence names the socket, the thread, the expected and received seq, and
    the surrounding records: the previous event, the resume marker if one
    applies, and the offending event. After a violation the stream resyncs on
    the received seq, so one gap is reported once.
    """
    streams: dict[tuple[str, str], _Stream] = {}
    evidence: list[Evidence] = []
    gaps = duplicates = events = resumes = 0
    for op in sorted(ops, key=lambda o: o.index):
        if op.type is not OpType.OK:
            continue
        if op.f == resume_f:
            key = (op.process, op.str_value(thread_key))
            stream = streams.setdefault(key, _Stream(first_seq))
            stream.expected = op.int_value(after_key) + 1
            stream.resume = op
            resumes += 1
            continue
        if op.f != event_f:
            continue
        events += 1
        key = (op.process, op.str_value(thread_key))
        stream = streams.setdefault(key, _Stream(first_seq))
        got = op.int_value(seq_key)
        if stream.expected is not None and got != stream.expected:
            kind = "gap" if got > stream.expected else "duplicate"
            if kind == "gap":
                gaps += 1
            else:
                duplicates += 1
            context = tuple(o for o in (stream.last, stream.resume, op) if o is not None)
            after = f" after resume {stream.resume.describe()}" if stream.resume else ""
            evidence.append(
                Evidence(
                    kind,
                    f"socket {key[0]} thread {key[1]}: expected seq {stream.expected}, "
                    f"got {got}{after}",
                    ops=context,
                    details={
                        "socket": key[0],
                        "thread": key[1],
                        "expected": stream.expected,
                        "got": got,
                    },
                )
            )
        stream.expected = max(got + 1, stream.expected or 0)
        stream.last = op
        stream.resume = None
        stream.events += 1
    return verdict_from(
        "ordering",
        evidence=evidence,
        counts={
            "events": events,
            "streams": len(streams),
            "resumes": resumes,
            "gaps": gaps,
            "duplicates": duplicates,
        },
        ok_summary=(
            f"{events} events on {len(streams)} streams in order"
            if events
            else "no events were received"
        ),
        applicable=events > 0,
    )
