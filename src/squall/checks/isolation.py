"""Tenant isolation: nobody sees another user's thread, over a socket or over HTTP.

Inputs: which user owns which thread, which socket belongs to which user, and
the history. Received events are lone ``ok`` observations (``f="event"``,
value ``{"thread": ...}``) by the socket's process. HTTP reads are invoked
with ``{"user": ..., "thread": ...}`` and complete ``ok`` with ``{"status":
code}``: a read of a thread the user does not own must have answered 404 (the
platform does not reveal that the thread exists).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from squall.checks.history import HistoryError, Op, OpType, pair_ops
from squall.checks.verdict import Evidence, Verdict, cut_evidence, verdict_from

NOT_FOUND = 404


def own_events(
    ops: Sequence[Op],
    *,
    thread_owner: Mapping[str, str],
    socket_user: Mapping[str, str],
    event_f: str = "event",
    thread_key: str = "thread",
) -> list[Op]:
    """``ops`` without the events a socket received of a thread its user does not own
    (:func:`check_isolation`'s evidence): judged for order too, one leak read as a gap in
    a stream the socket never had, and the user looked for an ordering bug as well."""

    def foreign(op: Op) -> bool:
        if op.f != event_f or op.type is not OpType.OK:
            return False
        user = socket_user.get(op.process)
        return user is not None and thread_owner.get(op.str_value(thread_key)) != user

    return [op for op in ops if not foreign(op)]


def check_isolation(
    ops: Sequence[Op],
    *,
    thread_owner: Mapping[str, str],
    socket_user: Mapping[str, str],
    event_f: str = "event",
    read_f: str = "http_read",
    thread_key: str = "thread",
    user_key: str = "user",
    status_key: str = "status",
) -> Verdict:
    """No socket receives an event of a thread its user does not own; foreign reads are 404.

    A thread missing from ``thread_owner`` is owned by nobody, so receiving its
    events is a leak too. A socket missing from ``socket_user`` is an input
    error (:class:`HistoryError`): the check cannot know whose it is. Foreign
    reads that failed or timed out are counted as ``unconfirmed_reads``. A socket whose
    events the history stopped recording past its bound is ``history-cut`` evidence
    (``counts["events_unrecorded"]``): the events it was not given may have crossed users.
    """
    evidence, unrecorded = cut_evidence(ops, event_f=event_f)
    cuts = len(evidence)
    events = foreign_events = reads = foreign_reads = unconfirmed = 0
    for op in sorted(ops, key=lambda o: o.index):
        if op.f != event_f or op.type is not OpType.OK:
            continue
        events += 1
        user = socket_user.get(op.process)
        if user is None:
            raise HistoryError(
                f"{op.describe()}: socket {op.process!r} is not in socket_user "
                f"({len(socket_user)} sockets known); pass every socket's user"
            )
        thread = op.str_value(thread_key)
        owner = thread_owner.get(thread)
        if owner != user:
            foreign_events += 1
            evidence.append(
                Evidence(
                    "foreign-event",
                    f"socket {op.process} of user {user} received an event of thread {thread} "
                    f"owned by {owner if owner is not None else 'nobody'}",
                    ops=(op,),
                    details={"socket": op.process, "user": user, "thread": thread, "owner": owner},
                )
            )
    for read in pair_ops(ops, fs={read_f}):
        reads += 1
        user = read.str_value(user_key)
        thread = read.str_value(thread_key)
        owner = thread_owner.get(thread)
        if owner == user:
            continue
        foreign_reads += 1
        if read.outcome is not OpType.OK:
            unconfirmed += 1
            continue
        status = read.int_value(status_key)
        if status != NOT_FOUND:
            evidence.append(
                Evidence(
                    "foreign-read",
                    f"user {user} read thread {thread} owned by "
                    f"{owner if owner is not None else 'nobody'} and got {status}, "
                    f"expected {NOT_FOUND}",
                    ops=read.ops,
                    details={"user": user, "thread": thread, "owner": owner, "status": status},
                )
            )
    return verdict_from(
        "isolation",
        evidence=evidence,
        counts={
            "events": events,
            "foreign_events": foreign_events,
            "reads": reads,
            "foreign_reads": foreign_reads,
            "unconfirmed_reads": unconfirmed,
        }
        | ({"events_unrecorded": unrecorded} if cuts else {}),
        ok_summary=(
            f"{events} events and {reads} reads, none crossed users"
            if events or reads
            else "no events or reads were recorded"
        ),
        applicable=bool(events or reads or cuts),
    )
