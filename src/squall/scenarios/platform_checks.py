"""Pure judging of a ``platform_races`` history: the platform's invariants as verdicts.

The scenario records what every socket did (see ``platform_races``); this module turns
those records, plus what the platform's own database holds when it can be read, into
the inputs of the generic checkers in :mod:`squall.checks` and adds the few invariants
that only make sense for the reference protocol (every acknowledged run completes once,
every socket of a user sees every event, ``single_session`` keeps one socket).

Record conventions (``f`` and value keys), all written by the scenario:

- ``connect`` (process = socket): invoke ``{user}``, ok on ``hello`` with ``{worker,
  session}``, fail when the socket could not open or closed before ``hello``;
- ``send`` (process = ``socket/client_msg_id``): invoke ``{user, thread, socket,
  client_msg_id, expect}``, ok on ``ack`` with ``{run}``, fail on ``error`` with
  ``{code}``, info on timeout; ``expect`` is ``"completed"`` or ``"any"`` (a run the
  scenario forces into recovery may legitimately fail);
- ``run`` (process = ``socket/client_msg_id/run``): invoke at send, ok when a socket of
  the user sees its ``agent_completed`` with status completed, fail otherwise;
- ``event`` (process = socket): a lone ok per received thread event ``{thread, run, seq,
  type, user, status?, charge?}``; ``seq`` is as received (missing when the frame had
  none): one that is not an integer is the ordering verdict's ``malformed-seq``, and
  the checks here that place events by seq leave that event out;
- ``resume`` (process = socket): invoke ``{thread, after_seq}``, ok on ``resume_done``
  with ``{last_seq}``;
- ``closed`` (process = socket): a lone ok ``{code, by}`` with ``by`` = ``server`` or
  ``client``;
- ``http_read`` / ``account`` (process = ``user/http``): HTTP reads with ``{status}`` and
  the account's ``{balance, initial_credits, credits_granted}``.

Nothing here does I/O: the scenario passes records and rows in, verdicts come out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from squall.checks.history import JsonValue, Op, OpPair, OpType, pair_ops
from squall.checks.ledger import LedgerRow, check_balance, check_unique_charges
from squall.checks.locks import check_locks
from squall.checks.verdict import Evidence, RaceTally, Verdict, verdict_from

COMPLETED = "agent_completed"
STARTED = "agent_started"
REPLACED = 4409
#: Logical nanoseconds per seq when the thread's event log is used as the lock clock.
SEQ_TICK = 1000


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One event of a thread's log: what was written at ``seq``, by which run.

    ``source`` is the index of the history record that saw it, or None when it was
    read from the platform's database.
    """

    thread: str
    seq: int
    run: str
    type: str
    status: str | None = None
    charge: int | None = None
    source: int | None = None

    def to_dict(self) -> dict[str, JsonValue]:
        return {
            "thread": self.thread,
            "seq": self.seq,
            "run": self.run,
            "type": self.type,
            "status": self.status,
            "charge": self.charge,
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class AccountRow:
    """An account as stored (or as ``/v1/accounts/me`` reports it)."""

    user: str
    balance: int
    initial: int
    granted: int = 0


@dataclass(frozen=True, slots=True)
class StoredCharge:
    """A ledger row as stored: ``run_id`` PK, owner, amount, whether it was refunded."""

    run: str
    user: str
    amount: int
    refunded: bool


def _opt_int(value: JsonValue) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _opt_str(value: JsonValue) -> str | None:
    return value if isinstance(value, str) else None


def _sequenced_events(ops: Iterable[Op]) -> list[Op]:
    """Received ``event`` records with an integer seq, in history order.

    An event without one cannot be placed in its thread's log; ``check_ordering``
    reports it as ``malformed-seq``.
    """
    return [
        op
        for op in sorted(ops, key=lambda o: o.index)
        if op.f == "event" and op.type is OpType.OK and _opt_int(op.get("seq")) is not None
    ]


def merge_verdicts(checker: str, verdicts: Sequence[Verdict], ok_summary: str) -> Verdict:
    """One verdict from several of the same kind (e.g. one per user)."""
    counts: dict[str, int] = defaultdict(int)
    for verdict in verdicts:
        for name, value in verdict.counts.items():
            counts[name] += value
    evidence = [e for v in verdicts for e in v.evidence]
    applicable = any(v.valid is not None for v in verdicts)
    if evidence:
        counts["violations"] = sum(v.violations for v in verdicts)
    else:
        counts.pop("violations", None)
    return verdict_from(
        checker,
        evidence=evidence,
        counts=dict(counts),
        ok_summary=ok_summary,
        applicable=applicable,
    )


# -- the thread log -----------------------------------------------------------------


def events_from_history(ops: Iterable[Op]) -> tuple[list[LogEvent], list[Evidence]]:
    """Every thread's log as the sockets saw it, merged by (thread, seq), seq ascending.

    Two sockets that received different events under the same (thread, seq) prove
    that seq was not unique: each such pair is ``divergent-seq`` evidence.
    """
    seen: dict[tuple[str, int], LogEvent] = {}
    divergent: list[Evidence] = []
    for op in _sequenced_events(ops):
        event = LogEvent(
            thread=op.str_value("thread"),
            seq=op.int_value("seq"),
            run=op.str_value("run"),
            type=op.str_value("type"),
            status=_opt_str(op.get("status")),
            charge=_opt_int(op.get("charge")),
            source=op.index,
        )
        key = (event.thread, event.seq)
        first = seen.get(key)
        if first is None:
            seen[key] = event
        elif (first.run, first.type) != (event.run, event.type):
            divergent.append(
                Evidence(
                    "divergent-seq",
                    f"thread {event.thread} seq {event.seq} was {first.type} of run "
                    f"{first.run} on one socket and {event.type} of run {event.run} on "
                    f"{op.process}",
                    ops=(op,),
                    details={"first": first.to_dict(), "second": event.to_dict()},
                )
            )
    return sorted(seen.values(), key=lambda e: (e.thread, e.seq)), divergent


def against_stored(ops: Iterable[Op], stored: Sequence[LogEvent]) -> list[Evidence]:
    """What the sockets received, against the thread logs the platform's database holds.

    A received (thread, seq) the log holds as another run's or type's event is
    ``divergent-seq``; one the log lacks although it holds seqs of that thread on both
    sides of it is ``unstored-event`` (events are stored before they are published, so
    the socket got an event that is not part of the thread, e.g. a superseded writer's
    whose store was refused). Seqs outside the stored range are not judged: older ones
    may have been pruned, newer ones written after the database was read. Each
    (thread, seq) is reported once, with the first record that received it.
    """
    log = {(e.thread, e.seq): e for e in stored}
    ranges: dict[str, tuple[int, int]] = {}
    for thread, events in _by_thread(stored).items():
        ranges[thread] = (events[0].seq, events[-1].seq)
    evidence: list[Evidence] = []
    reported: set[tuple[str, int]] = set()
    for op in _sequenced_events(ops):
        thread, seq = op.str_value("thread"), op.int_value("seq")
        run, kind = op.str_value("run"), op.str_value("type")
        if (thread, seq) in reported:
            continue
        found = log.get((thread, seq))
        details: dict[str, JsonValue] = {
            "socket": op.process,
            "thread": thread,
            "seq": seq,
            "received": {"run": run, "type": kind},
            "stored": None if found is None else found.to_dict(),
        }
        if found is not None and (found.run, found.type) != (run, kind):
            reported.add((thread, seq))
            evidence.append(
                Evidence(
                    "divergent-seq",
                    f"socket {op.process} received thread {thread} seq {seq} as {kind} of run "
                    f"{run}, but the platform stored {found.type} of run {found.run} there",
                    ops=(op,),
                    details=details,
                )
            )
        elif found is None and thread in ranges and ranges[thread][0] < seq < ranges[thread][1]:
            reported.add((thread, seq))
            evidence.append(
                Evidence(
                    "unstored-event",
                    f"socket {op.process} received thread {thread} seq {seq} ({kind} of run "
                    f"{run}), which the platform's log of the thread does not hold",
                    ops=(op,),
                    details=details,
                )
            )
    return evidence


def _by_thread(events: Iterable[LogEvent]) -> dict[str, list[LogEvent]]:
    threads: dict[str, list[LogEvent]] = defaultdict(list)
    for event in sorted(events, key=lambda e: (e.thread, e.seq)):
        threads[event.thread].append(event)
    return dict(threads)


def _holders(log: Sequence[LogEvent]) -> list[tuple[str, list[LogEvent]]]:
    """Who wrote a thread's log: one holder per run, plus any *finaliser* of a run.

    A run writes ``agent_completed`` last (docs/protocol.md), so an ``agent_completed``
    followed by more events of the same run was written by someone else: the holder
    that took the run over (recovery) while the run still wrote.
    """
    by_run: dict[str, list[LogEvent]] = defaultdict(list)
    for event in log:
        by_run[event.run].append(event)
    holders: list[tuple[str, list[LogEvent]]] = []
    for run, mine in by_run.items():
        last_seq = mine[-1].seq
        own = [e for e in mine if not (e.type == COMPLETED and e.seq < last_seq)]
        holders.append((run, own))
        holders.extend(
            (f"{run}/finaliser@{e.seq}", [e])
            for e in mine
            if e.type == COMPLETED and e.seq < last_seq
        )
    return holders


def lock_ops(events: Iterable[LogEvent]) -> list[Op]:
    """The thread logs as a lock history for :func:`squall.checks.locks.check_locks`.

    The thread's log is the order in which writes were committed, so its seq is the
    clock: a holder's section runs from its first to its last write (``acquire`` at the
    first seq, ``release`` just after the last), and each event is one accepted write.
    Events carry no fencing token, so tokens are unknown (None) and any overlap is
    unfenced: the platform's fencing must keep stale writes out of the log entirely.
    Each record's value names the history record (``source``) that saw the event.
    """
    records: list[tuple[int, int, str, str, dict[str, JsonValue]]] = []
    for thread, log in _by_thread(events).items():
        for holder, own in _holders(log):
            first, last = own[0].seq * SEQ_TICK, own[-1].seq * SEQ_TICK
            base: dict[str, JsonValue] = {"key": thread, "run": own[0].run}
            records.append((first, 0, holder, "acquire:invoke", base))
            records.append((first, 1, holder, "acquire:ok", {**base, "token": None}))
            for event in own:
                value: dict[str, JsonValue] = {
                    **base,
                    "seq": event.seq,
                    "type": event.type,
                    "source": event.source,
                }
                records.append((event.seq * SEQ_TICK, 2, holder, "write:invoke", value))
                records.append((event.seq * SEQ_TICK, 3, holder, "write:ok", value))
            records.append((last, 4, holder, "release:invoke", base))
            records.append((last, 5, holder, "release:ok", base))
    ops: list[Op] = []
    for time_ns, step, holder, what, value in sorted(records, key=lambda r: (r[0], r[1], r[2])):
        f, kind = what.split(":")
        ops.append(Op(len(ops), OpType(kind), holder, f, time_ns + step, value))
    return ops


def check_run_locks(events: Sequence[LogEvent], fences: Mapping[str, int] | None = None) -> Verdict:
    """At most one writer per thread at a time: runs never interleave in a thread's log.

    ``fences`` (the ``threads.fence`` column, the last recorded fencing token) adds one
    more check: every holder took a fresh, higher token and recorded it, so a thread's
    fence is at least the number of holders seen in its log (``fence-behind``).
    """
    ops = lock_ops(events)
    per_thread = [_in_seqs(check_locks(ops, key=thread), thread) for thread in _by_thread(events)]
    base = merge_verdicts(
        "locks",
        per_thread,
        f"{sum(v.counts.get('sections', 0) for v in per_thread)} run sections on "
        f"{len(per_thread)} threads never overlapped",
    )
    if fences is None:
        return base
    evidence = list(base.evidence)
    extra = 0
    for thread, log in _by_thread(events).items():
        holders = len(_holders(log))
        fence = fences.get(thread)
        if fence is None or fence < holders:
            extra += 1
            evidence.append(
                Evidence(
                    "fence-behind",
                    f"thread {thread} records fence {fence} but {holders} holders wrote to it; "
                    "each holder must record a higher token",
                    details={"thread": thread, "fence": fence, "holders": holders},
                )
            )
    counts = {**base.counts, "fences_checked": len(fences)}
    if evidence:
        counts["violations"] = base.violations + extra
    else:
        counts.pop("violations", None)
    return verdict_from(
        "locks",
        evidence=evidence,
        counts=counts,
        # An inapplicable base already says so: its summary is not prefixed twice.
        ok_summary=f"{base.summary.removeprefix('not applicable: ')}; "
        f"fences recorded for {len(fences)} threads",
        applicable=base.valid is not None,
    )


def _in_seqs(verdict: Verdict, thread: str) -> Verdict:
    """Lock evidence in the thread log's own terms: the thread and each holder's seqs.

    :func:`lock_ops` uses seq as the clock, so the times and durations the generic lock
    checker reports are not real time; this names the thread and the seq range each
    run (or finaliser) wrote instead.
    """

    def seqs(section: JsonValue) -> list[JsonValue]:
        if not isinstance(section, dict):
            return []
        ends = [section.get("start_ns"), section.get("end_ns")]
        return [t // SEQ_TICK if isinstance(t, int) else None for t in ends]

    evidence = []
    for e in verdict.evidence:
        earlier, later = e.details.get("earlier"), e.details.get("later")
        if e.kind != "overlap" or not isinstance(earlier, dict) or not isinstance(later, dict):
            evidence.append(e)
            continue
        first, second = seqs(earlier), seqs(later)
        stale = e.details.get("stale_writes_accepted")
        evidence.append(
            Evidence(
                e.kind,
                f"thread {thread}: {earlier.get('process')} (seq {first[0]}-{first[1]}) and "
                f"{later.get('process')} (seq {second[0]}-{second[1]}) wrote to it at once; "
                f"{stale} event(s) of {earlier.get('process')} landed after "
                f"{later.get('process')} began",
                e.ops,
                {**e.details, "thread": thread, "earlier_seqs": first, "later_seqs": second},
            )
        )
    return Verdict(verdict.checker, verdict.valid, verdict.summary, verdict.counts, tuple(evidence))


# -- runs and delivery --------------------------------------------------------------


def acked_runs(ops: Iterable[Op]) -> list[OpPair]:
    """The ``send`` operations the platform acknowledged (each started one run)."""
    return [p for p in pair_ops(ops, fs={"send"}) if p.outcome is OpType.OK and p.get("run")]


def lost_runs(ops: Iterable[Op]) -> set[str]:
    """Runs a fault of the harness took down with their worker (``lost_runs`` of the
    ``harness/…`` records): they may end ``failed``, refunded."""
    return {
        str(run)
        for op in ops
        if op.type is OpType.OK and op.process.startswith("harness/")
        for run in _list(op.get("lost_runs"))
    }


def _list(value: JsonValue) -> list[JsonValue]:
    return value if isinstance(value, list) else []


def check_runs(ops: Sequence[Op], events: Sequence[LogEvent]) -> Verdict:
    """Every acknowledged run completes exactly once, and writes nothing after that.

    ``never-completed``: no ``agent_completed`` in the log; ``completed-twice``: more
    than one; ``started-twice``: more than one ``agent_started`` (two holders executed
    it, whether or not both completed); ``not-completed``: its status is not
    ``completed`` although the scenario expected it to be, and no fault of the harness
    took it down (a run named in the ``lost_runs`` of a ``harness/…`` record, one whose
    worker was killed, may end ``failed``); ``events-after-completion``: the run's events
    continue after its first ``agent_completed`` (a superseded writer was accepted);
    ``wrong-thread``: some of the run's events are in a thread other than the one its
    message was sent to (only those in its own thread count for the rest).
    """
    by_run: dict[str, list[LogEvent]] = defaultdict(list)
    for event in events:
        by_run[event.run].append(event)
    evidence: list[Evidence] = []
    acked = acked_runs(ops)
    lost = lost_runs(ops)
    ended_lost: set[str] = set()
    completed = 0
    for send in acked:
        run, thread = send.str_value("run"), send.str_value("thread")
        everywhere = sorted(by_run.get(run, []), key=lambda e: (e.thread, e.seq))
        mine = [e for e in everywhere if e.thread == thread]
        ends = [e for e in mine if e.type == COMPLETED]
        details: dict[str, JsonValue] = {
            "run": run,
            "thread": thread,
            "events": [e.to_dict() for e in mine[-12:]],
        }
        astray = [e for e in everywhere if e.thread != thread]
        if astray:
            evidence.append(
                Evidence(
                    "wrong-thread",
                    f"run {run} was sent to thread {thread} but {len(astray)} of its events "
                    "are in another thread: "
                    + ", ".join(f"{e.thread} seq {e.seq} {e.type}" for e in astray[:6]),
                    ops=send.ops,
                    details={**details, "astray": [e.to_dict() for e in astray[:12]]},
                )
            )
        starts = [e for e in mine if e.type == STARTED]
        if len(starts) > 1:
            evidence.append(
                Evidence(
                    "started-twice",
                    f"run {run} started {len(starts)} times (executed by more than one "
                    "holder): agent_started at seq " + ", ".join(str(e.seq) for e in starts),
                    ops=send.ops,
                    details=details,
                )
            )
        if not ends:
            evidence.append(
                Evidence(
                    "never-completed",
                    f"run {run} ({send.invoke.describe()}) was acknowledged but no "
                    f"agent_completed is in thread {send.str_value('thread')}'s log",
                    ops=send.ops,
                    details=details,
                )
            )
            continue
        completed += 1
        if len(ends) > 1:
            evidence.append(
                Evidence(
                    "completed-twice",
                    f"run {run} completed {len(ends)} times: "
                    + ", ".join(f"seq {e.seq} {e.status}" for e in ends),
                    ops=send.ops,
                    details=details,
                )
            )
        after = [e for e in mine if e.seq > ends[0].seq]
        if after:
            evidence.append(
                Evidence(
                    "events-after-completion",
                    f"run {run} completed at seq {ends[0].seq} ({ends[0].status}) and then "
                    f"wrote {len(after)} more event(s): "
                    + ", ".join(f"{e.seq} {e.type}" for e in after[:6]),
                    ops=send.ops,
                    details=details,
                )
            )
        expected = send.get("expect", "completed") == "completed" and run not in lost
        if run in lost and ends[0].status != "completed":
            ended_lost.add(run)
        if expected and ends[0].status != "completed":
            evidence.append(
                Evidence(
                    "not-completed",
                    f"run {run} ended {ends[0].status} at seq {ends[0].seq}, expected completed",
                    ops=send.ops,
                    details=details,
                )
            )
    return verdict_from(
        "runs",
        evidence=evidence,
        counts={"acked": len(acked), "completed": completed},
        ok_summary=f"{len(acked)} acknowledged runs each completed once"
        + (f" ({len(ended_lost)} lost with their worker, ended failed)" if ended_lost else ""),
        applicable=bool(acked),
    )


def check_delivery(
    ops: Sequence[Op],
    events: Sequence[LogEvent],
    viewers: Mapping[str, Sequence[Collection[str]]],
) -> Verdict:
    """Each group of sockets in ``viewers[thread]`` jointly received every event of it.

    A group is one socket open for the whole part, or the sockets one client used in
    turn (closed, then resumed on a new socket). ``missed-events`` names the group, the
    thread and the seqs it never received.
    """
    received: dict[tuple[str, str], set[int]] = defaultdict(set)
    for op in _sequenced_events(ops):
        received[(op.process, op.str_value("thread"))].add(op.int_value("seq"))
    # Sockets whose connection dropped without a close frame (1006): by the network or by
    # the platform, which the client cannot tell apart.
    dropped = {op.process for op in ops if op.f == "closed" and op.value.get("code") == 1006}
    threads = _by_thread(events)
    evidence: list[Evidence] = []
    judged = 0
    for thread, groups in sorted(viewers.items()):
        wanted = {e.seq for e in threads.get(thread, [])}
        if not wanted:
            continue  # no event of the thread is known: nothing to have missed
        for group in groups:
            judged += 1
            got: set[int] = set()
            for socket in group:
                got |= received.get((socket, thread), set())
            missed = sorted(wanted - got)
            lost = sorted(dropped & set(group))
            if missed and lost and missed[0] > max(got, default=0):
                # Only the events after the drop are missing: name the drop, not delivery.
                evidence.append(
                    Evidence(
                        "dropped-connection",
                        f"socket(s) {', '.join(lost)} lost the connection without a close "
                        f"frame (code 1006) after seq {max(got, default=0)} of thread "
                        f"{thread}, and the {len(missed)} later event(s) never reached them: "
                        "a network fault, or the platform dropping the socket",
                        details={
                            "sockets": list[JsonValue](lost),
                            "thread": thread,
                            "missed": list(missed[:50]),
                            "events": len(wanted),
                        },
                    )
                )
            elif missed:
                evidence.append(
                    Evidence(
                        "missed-events",
                        f"socket(s) {', '.join(sorted(group))} never received "
                        f"{len(missed)} of {len(wanted)} events of thread {thread} "
                        f"(seq {', '.join(map(str, missed[:10]))})",
                        details={
                            "sockets": list[JsonValue](sorted(group)),
                            "thread": thread,
                            "missed": list(missed[:50]),
                            "events": len(wanted),
                        },
                    )
                )
    return verdict_from(
        "delivery",
        evidence=evidence,
        counts={"streams": judged, "threads": len(viewers)},
        ok_summary=(
            f"{judged} socket streams over {len(viewers)} threads received every event"
            if judged
            else f"no event of the {len(viewers)} watched thread(s) is known"
        ),
        applicable=judged > 0,
    )


# -- sessions -----------------------------------------------------------------------


def check_single_session(ops: Sequence[Op]) -> Verdict:
    """Concurrent logins of one user under ``single_session``: exactly one socket survives.

    Every other socket must have been closed by the server with 4409, and the survivor
    is the one whose ``hello`` carried the highest session number. Closes the client
    made itself (``by="client"``) are not judged.
    """
    connects = pair_ops(ops, fs={"connect"})
    server_closes = {
        op.process: op
        for op in ops
        if op.f == "closed" and op.type is OpType.OK and op.get("by") == "server"
    }
    evidence: list[Evidence] = []
    sockets = [c for c in connects if c.outcome is OpType.OK or c.process in server_closes]
    survivors = [c for c in sockets if c.process not in server_closes]
    for process, close in sorted(server_closes.items()):
        code = close.get("code")
        if code != REPLACED:
            evidence.append(
                Evidence(
                    "wrong-close-code",
                    f"socket {process} was closed with {code}, expected {REPLACED} (replaced)",
                    ops=(close,),
                    details={"socket": process, "code": code},
                )
            )
    if len(survivors) != 1 and sockets:
        evidence.append(
            Evidence(
                "not-one-session",
                f"{len(survivors)} of {len(sockets)} concurrent logins stayed open, expected 1: "
                + (", ".join(s.process for s in survivors) or "none"),
                ops=tuple(s.completion for s in survivors if s.completion is not None),
                details={
                    "survivors": list[JsonValue](s.process for s in survivors),
                    "logins": len(sockets),
                },
            )
        )
    sessions = {c.process: _opt_int(c.get("session")) for c in sockets}
    highest = max((s for s in sessions.values() if s is not None), default=None)
    if len(survivors) == 1 and highest is not None:
        kept = sessions.get(survivors[0].process)
        if kept != highest:
            evidence.append(
                Evidence(
                    "wrong-survivor",
                    f"socket {survivors[0].process} (session {kept}) survived, but the newest "
                    f"session is {highest}",
                    ops=survivors[0].ops,
                    details={"survivor": survivors[0].process, "session": kept, "newest": highest},
                )
            )
    return verdict_from(
        "sessions",
        evidence=evidence,
        counts={
            "logins": len(sockets),
            "replaced": sum(1 for c in server_closes.values() if c.get("code") == REPLACED),
            "survivors": len(survivors),
        },
        ok_summary=f"{len(sockets)} concurrent logins left exactly one socket, the newest",
        applicable=bool(sockets),
    )


# -- ledger -------------------------------------------------------------------------


def reported_charges(events: Iterable[LogEvent]) -> dict[str, int]:
    """Each run's charge as the last ``agent_completed`` of the run reports it."""
    charges: dict[str, int] = {}
    for event in sorted(events, key=lambda e: (e.thread, e.seq)):
        if event.type == COMPLETED and event.charge is not None:
            charges[event.run] = event.charge
    return charges


def _derived(op: Op, kind: OpType, amount: int) -> Op:
    return Op(op.index, kind, op.process, "debit", op.time_ns, {**op.value, "amount": amount})


def debits_by_user(
    ops: Sequence[Op], events: Sequence[LogEvent], *, run_cost: int
) -> dict[str, list[OpPair]]:
    """Each ``send`` as the debit it caused, per user.

    Acknowledged: ``ok`` with the charge its run reported (0 when refunded). A run whose
    completion nobody saw, or a send whose answer never came, may or may not be charged:
    ``info`` with ``run_cost``. Rejected sends charged nothing: ``fail``.
    """
    charges = reported_charges(events)
    debits: dict[str, list[OpPair]] = defaultdict(list)
    for send in pair_ops(ops, fs={"send"}):
        user = send.str_value("user")
        run = _opt_str(send.get("run"))
        kind, amount = send.outcome, run_cost
        if kind is OpType.OK and run is not None and run in charges:
            amount = charges[run]
        elif kind is OpType.OK:
            kind = OpType.INFO
        end = send.completion or send.invoke
        debits[user].append(
            OpPair(_derived(send.invoke, OpType.INVOKE, amount), _derived(end, kind, amount))
        )
    return dict(debits)


def check_ledger_api(
    ops: Sequence[Op],
    events: Sequence[LogEvent],
    accounts: Mapping[str, AccountRow],
    *,
    run_cost: int,
) -> Verdict:
    """Per user: the balance ``/v1/accounts/me`` reports = initial + granted − Σ charges.

    The charges are those the runs reported in ``agent_completed``; a higher balance
    means acknowledged debits were lost (``balance-too-high``), a lower one that
    something was charged twice. A user whose account was asked for (an ``account``
    operation) or who sent messages, but who has no row in ``accounts`` (the request
    failed, or its answer held no integer balance), cannot be checked: such users are
    counted as ``accounts_unread`` and named in the summary, not judged.
    """
    debits = debits_by_user(ops, events, run_cost=run_cost)
    verdicts = []
    for user, account in sorted(accounts.items()):
        verdict = check_balance(
            initial=account.initial + account.granted,
            final=account.balance,
            debits=debits.get(user, []),
        )
        verdicts.append(_named(verdict, user))
    asked = {str(op.get("user")) for op in ops if op.f == "account" and op.get("user") is not None}
    unread = sorted((asked | debits.keys()) - accounts.keys())
    summary = f"{len(accounts)} balances match initial − Σ reported charges"
    if unread:
        shown = ", ".join(unread[:5]) + (f" and {len(unread) - 5} more" if len(unread) > 5 else "")
        summary += f"; {len(unread)} account(s) could not be read and were not checked ({shown})"
    verdict = merge_verdicts("ledger", verdicts, summary)
    if not unread:
        return verdict
    counts = {**verdict.counts, "accounts_unread": len(unread)}
    return replace(verdict, counts=counts)


def _named(verdict: Verdict, user: str) -> Verdict:
    """Prefix each evidence message with the user it is about."""
    evidence = tuple(
        Evidence(e.kind, f"user {user}: {e.message}", e.ops, {**e.details, "user": user})
        for e in verdict.evidence
    )
    return Verdict(verdict.checker, verdict.valid, verdict.summary, verdict.counts, evidence)


def check_ledger_db(
    ops: Sequence[Op],
    events: Sequence[LogEvent],
    accounts: Sequence[AccountRow],
    charges: Sequence[StoredCharge],
) -> Verdict:
    """The platform's tables agree with themselves and with what the runs reported.

    Per user ``accounts.balance = initial + Σ grants − Σ ledger.amount WHERE NOT
    refunded`` (``balance-too-high``: lost updates); each run charged once
    (``double-charge``); each acknowledged run has its ledger row (``uncharged-run``)
    and reported the charge the row holds, 0 if refunded (``charge-mismatch``).
    """
    verdicts = []
    by_user: dict[str, list[OpPair]] = defaultdict(list)
    for index, row in enumerate(charges):
        value: dict[str, JsonValue] = {"run": row.run, "user": row.user, "amount": row.amount}
        invoke = Op(index, OpType.INVOKE, f"ledger/{row.run}", "debit", 0, value)
        done = Op(index, OpType.OK, f"ledger/{row.run}", "debit", 0, value)
        if not row.refunded:
            by_user[row.user].append(OpPair(invoke, done))
    for account in sorted(accounts, key=lambda a: a.user):
        verdict = check_balance(
            initial=account.initial + account.granted,
            final=account.balance,
            debits=by_user.get(account.user, []),
        )
        verdicts.append(_named(verdict, account.user))
    verdicts.append(check_unique_charges([LedgerRow(c.run, c.run, c.amount) for c in charges]))
    stored = {c.run: c for c in charges}
    reported = reported_charges(events)
    evidence: list[Evidence] = []
    for send in acked_runs(ops):
        run = send.str_value("run")
        found = stored.get(run)
        if found is None:
            evidence.append(
                Evidence(
                    "uncharged-run",
                    f"run {run} was acknowledged but has no ledger row",
                    ops=send.ops,
                    details={"run": run},
                )
            )
            continue
        row = found
        expected = 0 if row.refunded else row.amount
        if run in reported and reported[run] != expected:
            evidence.append(
                Evidence(
                    "charge-mismatch",
                    f"run {run} reported charge {reported[run]} but its ledger row holds "
                    f"{row.amount}{' (refunded)' if row.refunded else ''}",
                    ops=send.ops,
                    details={
                        "run": run,
                        "reported": reported[run],
                        "amount": row.amount,
                        "refunded": row.refunded,
                    },
                )
            )
    verdicts.append(
        verdict_from(
            "ledger.runs",
            evidence=evidence,
            # Not "rows": merged with check_unique_charges' count of the same rows, it
            # counted each ledger row twice.
            counts={"runs_charged": len(charges)},
            ok_summary="every acknowledged run has its ledger row",
        )
    )
    return merge_verdicts(
        "ledger.db",
        verdicts,
        f"{len(accounts)} accounts and {len(charges)} ledger rows consistent",
    )


# -- summary ------------------------------------------------------------------------


def serialised_runs(events: Sequence[LogEvent]) -> int:
    """Runs that had to wait for another run of their thread (contention the platform saw)."""
    return sum(
        max(0, len({e.run for e in log if e.type == STARTED}) - 1)
        for log in _by_thread(events).values()
    )


def race_tally(
    verdicts: Sequence[Verdict], *, serialised: int, sessions: Verdict | None
) -> RaceTally:
    """Races detected and prevented, and every checker's violations.

    Detected: runs queued behind another run of their thread (serialised), sockets
    replaced under ``single_session``, and overlapping writers in a thread's log.
    Prevented: the serialised runs, the replacements closed with 4409, and fenced
    overlaps. Unfenced overlaps stay unprevented.
    """
    locks = next((v for v in verdicts if v.checker == "locks"), None)
    overlaps = locks.counts.get("overlaps", 0) if locks is not None else 0
    fenced = locks.counts.get("fenced_overlaps", 0) if locks is not None else 0
    replaced = sessions.counts.get("replaced", 0) if sessions is not None else 0
    logins = sessions.counts.get("logins", 0) if sessions is not None else 0
    detected = serialised + max(0, logins - 1) + overlaps
    prevented = serialised + min(replaced, max(0, logins - 1)) + fenced
    return RaceTally(detected, prevented, sum(v.violations for v in verdicts))
