"""The backlog of events whose publish found Redis unreachable: newest per thread, bounded."""

from __future__ import annotations

from typing import Any

import pytest

from squall.target.ids import UserID
from squall.target.republish import Backlog

USER = UserID("u1")


def event(thread: str, seq: int) -> dict[str, Any]:
    return {"type": "agent_thinking", "thread_id": thread, "seq": seq, "run_id": "r1"}


def test_only_the_newest_event_of_a_thread_is_kept() -> None:
    backlog = Backlog()
    backlog.add(USER, event("t1", 4), now=0.0)
    backlog.add(USER, event("t1", 5), now=1.0)
    backlog.add(USER, event("t1", 3), now=2.0)  # older than the one waiting: ignored
    pending = backlog.next(now=2.0)
    assert pending is not None
    assert (len(backlog), pending.seq, pending.event["seq"]) == (1, 5, 5)


def test_the_thread_whose_event_failed_first_goes_first() -> None:
    backlog = Backlog()
    backlog.add(USER, event("t1", 1), now=0.0)
    backlog.add(USER, event("t2", 1), now=1.0)
    backlog.add(USER, event("t1", 2), now=2.0)  # t1 failed again: now the newest
    first = backlog.next(now=2.0)
    assert first is not None
    assert first.event["thread_id"] == "t2"


def test_a_later_publish_of_the_thread_makes_the_waiting_event_unneeded() -> None:
    backlog = Backlog()
    backlog.add(USER, event("t1", 4), now=0.0)
    backlog.published(event("t1", 3))  # older: the waiting one is still needed
    assert len(backlog) == 1
    backlog.published(event("t1", 4))
    assert len(backlog) == 0
    assert backlog.next(now=0.0) is None


def test_events_that_are_no_thread_events_are_not_kept() -> None:
    backlog = Backlog()
    backlog.add(USER, {"type": "error", "code": "internal"}, now=0.0)
    backlog.published({"type": "error"})
    assert len(backlog) == 0


def test_the_oldest_thread_goes_when_the_backlog_is_full_and_is_counted_once() -> None:
    backlog = Backlog(max_threads=2)
    for i, thread in enumerate(("t1", "t2", "t3")):
        backlog.add(USER, event(thread, 1), now=float(i))
    assert len(backlog) == 2
    assert backlog.take_dropped() == 1
    assert backlog.take_dropped() == 0
    first = backlog.next(now=2.0)
    assert first is not None
    assert first.event["thread_id"] == "t2"


def test_events_past_the_age_bound_are_dropped_and_counted() -> None:
    backlog = Backlog(max_age_s=10.0)
    backlog.add(USER, event("t1", 1), now=0.0)
    backlog.add(USER, event("t2", 1), now=5.0)
    pending = backlog.next(now=12.0)
    assert pending is not None
    assert pending.event["thread_id"] == "t2"
    assert backlog.take_dropped() == 1
    assert backlog.next(now=16.0) is None
    assert backlog.take_dropped() == 1


def test_discard_keeps_a_newer_event_of_the_thread() -> None:
    backlog = Backlog()
    backlog.add(USER, event("t1", 1), now=0.0)
    stale = backlog.next(now=0.0)
    assert stale is not None
    backlog.add(USER, event("t1", 2), now=1.0)
    backlog.discard(stale)
    assert len(backlog) == 1
    newer = backlog.next(now=1.0)
    assert newer is not None
    backlog.discard(newer)
    assert len(backlog) == 0


def test_a_backlog_without_room_is_refused() -> None:
    with pytest.raises(ValueError, match="max_threads must be at least 1"):
        Backlog(max_threads=0)
