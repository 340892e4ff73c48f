"""Isolation checker: events and HTTP reads never cross users."""

from __future__ import annotations

import itertools

import pytest

from squall.checks.history import HistoryError, HistoryRecorder
from squall.checks.isolation import check_isolation, own_events
from squall.checks.ordering import check_ordering

OWNERS = {"t-alice": "alice", "t-bob": "bob"}
SOCKETS = {"s-alice": "alice", "s-bob": "bob"}


def recorder() -> HistoryRecorder:
    ticks = itertools.count()
    return HistoryRecorder(clock=lambda: next(ticks))


def read(rec: HistoryRecorder, user: str, thread: str, status: int | None) -> None:
    op = rec.invoke(f"http-{user}", "http_read", {"user": user, "thread": thread})
    if status is None:
        rec.info(op)
    else:
        rec.ok(op, {"status": status})


def test_own_events_and_404_for_foreign_reads_pass() -> None:
    rec = recorder()
    rec.observe("s-alice", "event", {"thread": "t-alice"})
    rec.observe("s-bob", "event", {"thread": "t-bob"})
    read(rec, "alice", "t-alice", 200)
    read(rec, "alice", "t-bob", 404)
    read(rec, "bob", "t-alice", None)
    verdict = check_isolation(rec.ops, thread_owner=OWNERS, socket_user=SOCKETS)
    assert verdict.valid is True
    assert verdict.counts["foreign_reads"] == 2
    assert verdict.counts["unconfirmed_reads"] == 1


def test_foreign_event_names_socket_user_event_and_owner() -> None:
    rec = recorder()
    rec.observe("s-alice", "event", {"thread": "t-alice"})
    leak = rec.observe("s-bob", "event", {"thread": "t-alice", "seq": 7})
    verdict = check_isolation(rec.ops, thread_owner=OWNERS, socket_user=SOCKETS)
    assert verdict.valid is False
    [evidence] = verdict.evidence
    assert evidence.kind == "foreign-event"
    assert evidence.ops == (leak,)
    assert evidence.details == {
        "socket": "s-bob",
        "user": "bob",
        "thread": "t-alice",
        "owner": "alice",
    }


def test_event_of_an_unowned_thread_is_a_leak() -> None:
    rec = recorder()
    rec.observe("s-bob", "event", {"thread": "t-ghost"})
    verdict = check_isolation(rec.ops, thread_owner=OWNERS, socket_user=SOCKETS)
    assert verdict.valid is False
    assert verdict.evidence[0].details["owner"] is None


def test_foreign_read_that_answered_is_caught() -> None:
    rec = recorder()
    read(rec, "bob", "t-alice", 200)
    verdict = check_isolation(rec.ops, thread_owner=OWNERS, socket_user=SOCKETS)
    assert verdict.valid is False
    [evidence] = verdict.evidence
    assert evidence.kind == "foreign-read"
    assert evidence.details["status"] == 200
    assert len(evidence.ops) == 2


def test_unknown_socket_is_an_input_error() -> None:
    rec = recorder()
    rec.observe("s-carol", "event", {"thread": "t-alice"})
    with pytest.raises(HistoryError, match="'s-carol' is not in socket_user"):
        check_isolation(rec.ops, thread_owner=OWNERS, socket_user=SOCKETS)


def test_nothing_recorded_is_not_applicable() -> None:
    assert check_isolation((), thread_owner=OWNERS, socket_user=SOCKETS).valid is None


def test_a_leaked_event_is_isolations_evidence_and_no_gap_in_order() -> None:
    # platform_races judged order on every event a socket received: bob's socket, given
    # alice's seq 3, read as "expected seq 1, got 3" on top of the leak.
    rec = recorder()
    for seq in (1, 2):
        rec.observe("s-bob", "event", {"thread": "t-bob", "seq": seq})
    rec.observe("s-bob", "event", {"thread": "t-alice", "seq": 3})
    rec.observe("s-bob", "event", {"thread": "t-ghost", "seq": 5})
    owned = own_events(rec.ops, thread_owner=OWNERS, socket_user=SOCKETS)
    assert [op.get("seq") for op in owned] == [1, 2]
    assert check_ordering(owned, first_seq=1).valid is True
    assert check_ordering(rec.ops, first_seq=1).valid is False
    assert check_isolation(rec.ops, thread_owner=OWNERS, socket_user=SOCKETS).violations == 2


@pytest.mark.parametrize("status", [200, 403, 500])
def test_a_foreign_read_answered_other_than_not_found_is_a_leak(status: int) -> None:
    # 403 or 500 for another user's thread tells that it exists; only 404 keeps it hidden.
    clock = itertools.count()
    rec = HistoryRecorder(clock=lambda: next(clock))
    rec.ok(
        rec.invoke("http-bob", "http_read", {"user": "bob", "thread": "t-alice"}),
        {"status": status},
    )
    verdict = check_isolation(rec.ops, thread_owner={"t-alice": "alice"}, socket_user={})
    assert verdict.valid is False
    assert [e.kind for e in verdict.evidence] == ["foreign-read"]


def test_a_read_of_a_thread_nobody_owns_is_a_leak() -> None:
    clock = itertools.count()
    rec = HistoryRecorder(clock=lambda: next(clock))
    rec.ok(
        rec.invoke("http-bob", "http_read", {"user": "bob", "thread": "t-nobody"}), {"status": 200}
    )
    verdict = check_isolation(rec.ops, thread_owner={"t-alice": "alice"}, socket_user={})
    assert verdict.valid is False
    assert verdict.counts["foreign_reads"] == 1
