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
*invoked* (sent) and closes at its completion (``resume_done``). Until the
platform processes the resume, live events keep coming and, once the socket has
seen the thread, rise by one (the socket fills gaps from storage). When the
socket's range began beyond ``after_seq + 1`` (or it had none), those live events
overtook the replay: the stream then restarts at ``after_seq + 1``. When it began
at or below, the stream continues after the last event sent (jumping to
``after_seq + 1`` if that was ahead of the socket). A ``resume_done`` whose
``last_seq`` is at or beyond the seq the stream expects next is a gap: the
replay is sent before it, so those events never arrived (whether the replay
never restarted or its tail went missing). A history with resumes but no events
is still judged.

A stream that will be resumed is judged by its resume, not by ``first_seq``: a
fresh socket receives its user's live events from ``hello`` on, so the first
events of the thread it sees may arrive *before* the client sends its
``resume`` (the protocol's "tracking starts with the first event the socket
sees"). Those events must still rise by one; the resume then decides what
follows them: when they began at or below ``after_seq + 1`` the stream
continues after the last of them, and when they began beyond it the platform
restarts at ``after_seq + 1`` and they count as events that overtook the replay.
Either way every seq after ``after_seq`` must reach the socket, in order.

An event whose ``seq`` is not a JSON integer (missing, ``null``, a string, a float, a
boolean) is ``malformed-seq`` evidence, counted in ``counts["malformed_seqs"]``: the
stream does not move on it, so it is neither a gap nor a duplicate and the events
around it are judged as if it had not arrived.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from squall.checks.history import Op, OpType, json_int, shown_json
from squall.checks.verdict import Evidence, Verdict, cut_evidence, verdict_from


@dataclass(slots=True)
class _Stream:
    expected: int | None
    last: Op | None = None
    resume: Op | None = None
    events: int = 0
    #: ``after_seq`` of a resume whose replay has not restarted the stream yet.
    window_after: int | None = None
    #: A resume was invoked and has not completed yet.
    awaiting_done: bool = False
    #: First seq of the range this socket delivered contiguously (the platform's cursor).
    first: int | None = None
    #: Live events that overtook a replay which then restarted the stream.
    overtook: int = 0


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
    run_key: str = "run",
) -> Verdict:
    """Every (socket, thread) stream is gap-free and duplicate-free, across resumes.

    Evidence names the socket, the thread, the expected and received seq, and
    the surrounding records: the previous event, the resume marker if one
    applies, and the offending event. After a violation the stream resyncs on
    the received seq, so one gap is reported once. ``resume_restarts`` selects
    the windowed resume semantics described in the module docstring;
    ``counts["early_live"]`` is then the number of tolerated overtaking events. An
    event without an integer seq is ``malformed-seq`` evidence (socket, thread, run and
    the raw value, shortened) and leaves its stream as it was. A socket whose events the
    history stopped recording past its bound is ``history-cut`` evidence
    (``counts["events_unrecorded"]``): its streams are judged up to the cut only.
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
    evidence, unrecorded = cut_evidence(ordered, event_f=event_f)
    cuts = len(evidence)
    gaps = duplicates = events = resumes = malformed = 0
    for op in ordered:
        if op.f == event_f and op.type is OpType.OK and json_int(op.get(seq_key)) is None:
            events += 1
            malformed += 1
            evidence.append(_malformed(op, thread_key, seq_key, run_key))
            continue
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
                _violation(kind, key, stream.expected, got, context, f"got {got}{after}")
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
            "malformed_seqs": malformed,
            "early_live": sum(s.overtook for s in streams.values()),
        }
        | ({"events_unrecorded": unrecorded} if cuts else {}),
        ok_summary=(
            f"{events} events on {len(streams)} streams in order"
            if events
            else f"no events were received; {resumes} resume(s) had nothing to replay"
            if resumes
            else "no events were received"
        ),
        applicable=events > 0 or resumes > 0 or cuts > 0,
    )


def _malformed(op: Op, thread_key: str, seq_key: str, run_key: str) -> Evidence:
    """An event whose seq is missing or not an integer: what it was, shown safely.

    ``details["raw"]`` is the value as JSON, shortened, or None when the key is missing.
    """
    thread = op.str_value(thread_key)
    run = op.get(run_key)
    raw = shown_json(op.get(seq_key)) if seq_key in op.value else None
    of_run = f" of run {run}" if isinstance(run, str) else ""
    what = f"{seq_key} {raw} is not an integer" if raw is not None else f"no {seq_key}"
    return Evidence(
        "malformed-seq",
        f"socket {op.process} thread {thread}: an event{of_run} has {what}",
        ops=(op,),
        details={
            "socket": op.process,
            "thread": thread,
            "run": run if isinstance(run, str) else None,
            "raw": raw,
        },
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


def _restarts(stream: _Stream, after: int) -> bool:
    """Whether the platform restarts this stream at ``after + 1`` rather than continuing it.

    It continues after the last event it sent when the socket's contiguous range began
    at ``after + 1`` or below, and restarts when it began beyond (or nothing came yet).
    """
    return stream.first is None or stream.first > after + 1


def _replayed_to(
    op: Op, stream: _Stream, key: tuple[str, str], after: int | None, last_key: str
) -> list[Evidence]:
    """A ``resume_done``: it must not claim more than reached the socket.

    ``last_seq`` is the highest seq the socket delivered, and the replay is sent before
    ``resume_done``: a ``last_seq`` beyond what the stream holds names events that never
    reached the client. The stream holds up to ``after`` when the replay never restarted
    it, at least ``after`` when it continued (seqs up to ``after_seq`` are skipped), and
    what it received once restarted (``after`` None: the window closed).
    """
    received = (stream.expected or 1) - 1
    if after is None:
        held = received
    elif _restarts(stream, after):
        held = after
    else:
        held = max(received, after)
    last = json_int(op.get(last_key))
    reported = last if last is not None else held
    stream.expected = max(held, reported, received) + 1
    if reported <= held:
        return []
    return [
        _violation(
            "gap",
            key,
            held + 1,
            None,
            tuple(o for o in (stream.last, stream.resume, op) if o is not None),
            f"but the replay ended (last_seq {reported}) without delivering it",
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
    evidence it produced. Inside the window an event is accepted when it continues the
    socket's contiguous range (live events keep flowing, gap-filled, until the platform
    processes the resume) or when it is ``after_seq + 1`` where the replay restarts
    the stream or jumps over seqs ``after_seq`` skipped; the first event of a thread the
    socket had not seen yet starts its range anywhere beyond ``after_seq + 1`` (at or
    below ``after_seq`` it is one the client already holds).
    """
    if op.f == resume_f:
        if op.type is OpType.INVOKE:
            stream.window_after = op.int_value(after_key)
            stream.resume = op
            stream.awaiting_done = True
            return True, []
        if not stream.awaiting_done:
            return op.type is not OpType.OK, []  # a lone marker: the plain rules apply
        stream.awaiting_done = False
        after, stream.window_after = stream.window_after, None
        if op.type is not OpType.OK:
            return True, []  # a failed resume: nothing changes
        return True, _replayed_to(op, stream, key, after, last_key)
    if stream.window_after is None or op.type is not OpType.OK:
        return False, []
    after, got, expected = stream.window_after, op.int_value(seq_key), stream.expected
    stream.events += 1
    context = tuple(o for o in (stream.last, stream.resume, op) if o is not None)
    stream.last = op
    restarts = _restarts(stream, after)
    if expected is not None and got == expected:
        stream.expected = got + 1
        stream.overtook += restarts
        return True, []
    if got == after + 1 and (restarts or (expected is not None and expected <= got)):
        stream.expected = got + 1
        stream.first = got if restarts else stream.first
        stream.window_after = None
        return True, []
    if expected is None and got > after + 1:
        stream.first, stream.expected = got, got + 1
        stream.overtook += 1
        return True, []
    if expected is None or got < expected:
        return True, [
            _violation(
                "duplicate",
                key,
                expected or after + 1,
                got,
                context,
                f"got {got} during the resume",
            )
        ]
    stream.expected = got + 1
    return True, [_violation("gap", key, expected, got, context, f"got {got} during the resume")]
