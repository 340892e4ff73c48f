"""Per-stream ordering: each socket sees each thread's events as seq, seq+1, seq+2, ...

A received event is a lone ``ok`` observation (``f="event"``, value
``{"thread": ..., "seq": n}``) by the socket's process. A socket that
reconnects and resumes records a ``resume`` marker (an ``ok`` record, alone or
completing an invoke) with ``after_seq=N``: the
next event of that thread on that socket must then be ``N+1``. Without a
marker, the first event seen on a stream sets where it starts (unless
``first_seq`` is given).

With ``resume_restarts=True`` the checker follows the reference protocol's
documented resume semantics instead: the window opens when the ``resume`` is
*invoked* (sent) and closes at its completion (``resume_done``). Inside it, a
few live events that overtook the replay (seq above ``after_seq + 1``) are
tolerated if they rise; the stream then restarts at ``after_seq + 1`` (or
continues at the next seq when the socket already delivered past
``after_seq``). A ``resume_done`` whose ``last_seq`` is at or beyond the seq the
stream expects next is a gap: the replay is sent before it, so those events
never arrived (whether the replay never restarted or its tail went missing). A
history with resumes but no events is still judged.

A stream that will be resumed is judged by its resume, not by ``first_seq``: a
fresh socket receives its user's live events from ``hello`` on, so the first
events of the thread it sees may arrive *before* the client sends its
``resume`` (the protocol's "tracking starts with the first event the socket
sees"). Those events must still rise by one; the resume then decides what
follows them: when they began at or below ``after_seq + 1`` the stream
continues after the last of them, and when they began beyond it the platform
restarts at ``after_seq + 1`` and they count as events that overtook the replay.
Either way every seq after ``after_seq`` must reach the socket, in order.
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
    #: ``after_seq`` of a resume whose replay has not restarted the stream yet.
    window_after: int | None = None
    #: Highest live event received inside the open window.
    early_last: int | None = None
    #: A resume was invoked and has not completed yet.
    awaiting_done: bool = False
    #: First seq of the range this socket delivered contiguously (the platform's cursor).
    first: int | None = None
    #: Seq the open window's replay must restart at.
    restart_at: int | None = None


def check_ordering(
    ops: Sequence[Op],
    *,
    event_f: str = "event",
    resume_f: str = "resume",
    thread_key: str = "thread",
    seq_key: str = "seq",
    after_key: str = "after_seq",
    first_seq: int | None = None,
    resume_restarts: bool = False,
    last_key: str = "last_seq",
) -> Verdict:
    """Every (socket, thread) stream is gap-free and duplicate-free, across resumes.

    Evidence names the socket, the thread, the expected and received seq, and
    the surrounding records: the previous event, the resume marker if one
    applies, and the offending event. After a violation the stream resyncs on
    the received seq, so one gap is reported once. ``resume_restarts`` selects
    the windowed resume semantics described in the module docstring;
    ``counts["early_live"]`` is then the number of tolerated overtaking events.
    """
    ordered = sorted(ops, key=lambda o: o.index)
    # Streams that a resume will judge start wherever the socket joined the thread.
    resumed = (
        {
            (op.process, op.str_value(thread_key))
            for op in ordered
            if op.f == resume_f and op.type is OpType.INVOKE
        }
        if resume_restarts
        else set()
    )

    def new_stream(key: tuple[str, str]) -> _Stream:
        return _Stream(None if key in resumed else first_seq)

    streams: dict[tuple[str, str], _Stream] = {}
    evidence: list[Evidence] = []
    gaps = duplicates = events = resumes = early = 0
    for op in ordered:
        if resume_restarts and op.f in (resume_f, event_f):
            key = (op.process, op.str_value(thread_key))
            stream = streams.setdefault(key, new_stream(key))
            handled, found = _windowed(op, stream, key, resume_f, seq_key, after_key, last_key)
            if handled:
                evidence.extend(found)
                gaps += sum(1 for e in found if e.kind == "gap")
                duplicates += sum(1 for e in found if e.kind == "duplicate")
                resumes += op.f == resume_f and op.type is OpType.INVOKE
                events += op.f == event_f
                early += op.f == event_f and not found and stream.window_after is not None
                continue
        if op.type is not OpType.OK:
            continue
        if op.f == resume_f:
            key = (op.process, op.str_value(thread_key))
            stream = streams.setdefault(key, new_stream(key))
            stream.expected = op.int_value(after_key) + 1
            stream.resume = op
            resumes += 1
            continue
        if op.f != event_f:
            continue
        events += 1
        key = (op.process, op.str_value(thread_key))
        stream = streams.setdefault(key, new_stream(key))
        got = op.int_value(seq_key)
        if stream.first is None:
            stream.first = got
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
            "early_live": early,
        },
        ok_summary=(
            f"{events} events on {len(streams)} streams in order"
            if events
            else f"no events were received; {resumes} resume(s) had nothing to replay"
            if resumes
            else "no events were received"
        ),
        applicable=events > 0 or resumes > 0,
    )


def _violation(
    kind: str, key: tuple[str, str], expected: int, got: int | None, ops: tuple[Op, ...], why: str
) -> Evidence:
    return Evidence(
        kind,
        f"socket {key[0]} thread {key[1]}: expected seq {expected}, {why}",
        ops=ops,
        details={"socket": key[0], "thread": key[1], "expected": expected, "got": got},
    )


def _replayed_to(op: Op, stream: _Stream, key: tuple[str, str], last_key: str) -> list[Evidence]:
    """A ``resume_done`` after the replay restarted: it must not claim more than arrived.

    ``last_seq`` is the highest seq the socket delivered, and the replay is sent before
    ``resume_done``: a ``last_seq`` at or beyond the seq the stream expects next names
    events that never reached the client (the tail of the replay went missing).
    """
    last = op.get(last_key)
    if not isinstance(last, int) or isinstance(last, bool) or stream.expected is None:
        return []
    expected = stream.expected
    if last < expected:
        return []
    stream.expected = last + 1
    return [
        _violation(
            "gap",
            key,
            expected,
            None,
            tuple(o for o in (stream.last, op) if o is not None),
            f"but the replay ended (last_seq {last}) without delivering it",
        )
    ]


def _windowed(
    op: Op,
    stream: _Stream,
    key: tuple[str, str],
    resume_f: str,
    seq_key: str,
    after_key: str,
    last_key: str,
) -> tuple[bool, list[Evidence]]:
    """Apply one record to a stream under the windowed resume semantics.

    Returns whether the record was consumed here (else the plain rules apply) and the
    evidence it produced.
    """
    if op.f == resume_f:
        if op.type is OpType.INVOKE:
            after = op.int_value(after_key)
            stream.window_after = after
            stream.early_last = None
            stream.resume = op
            stream.awaiting_done = True
            if stream.first is not None and stream.first > after + 1 and stream.expected:
                # Everything this socket delivered lies beyond after_seq + 1: the
                # replay restarts the stream there, re-sending what came live.
                stream.restart_at = after + 1
                stream.early_last = stream.expected - 1
            elif stream.expected is not None and stream.expected > after + 1:
                stream.restart_at = stream.expected  # resumed inside its own stream
            else:
                stream.restart_at = after + 1
            return True, []
        if not stream.awaiting_done:
            return op.type is not OpType.OK, []  # a lone marker: the plain rules apply
        stream.awaiting_done = False
        if op.type is not OpType.OK:
            # A failed resume: nothing changes.
            stream.window_after = stream.early_last = stream.restart_at = None
            return True, []
        if stream.window_after is None:
            return True, _replayed_to(op, stream, key, last_key)
        after, found = stream.window_after, []
        restart = stream.restart_at if stream.restart_at is not None else after + 1
        last = op.get(last_key)
        reported = last if isinstance(last, int) and not isinstance(last, bool) else after
        if reported >= restart:
            found.append(
                _violation(
                    "gap",
                    key,
                    restart,
                    None,
                    tuple(o for o in (stream.resume, op) if o is not None),
                    f"but the replay ended (last_seq {reported}) without delivering it",
                )
            )
        stream.expected = max(restart - 1, stream.early_last or 0, reported) + 1
        stream.window_after = stream.early_last = stream.restart_at = None
        return True, found
    if stream.window_after is None or op.type is not OpType.OK:
        return False, []
    after, got = stream.window_after, op.int_value(seq_key)
    restart = stream.restart_at if stream.restart_at is not None else after + 1
    stream.events += 1
    if got == restart:
        stream.expected = got + 1
        stream.first = got if stream.first is None else min(stream.first, got)
        stream.window_after = stream.early_last = stream.restart_at = None
        stream.last = op
        return True, []
    context = tuple(o for o in (stream.last, stream.resume, op) if o is not None)
    stream.last = op
    if got < restart:
        return True, [
            _violation("duplicate", key, restart, got, context, f"got {got} during the resume")
        ]
    if stream.early_last is not None and got <= stream.early_last:
        return True, [
            _violation(
                "duplicate",
                key,
                stream.early_last + 1,
                got,
                context,
                f"got {got} again before the replay restarted",
            )
        ]
    stream.early_last = got
    return True, []
