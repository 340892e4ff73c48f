"""RunTracker over a socket's long life: what it holds stays bounded, what it counts exact."""

from __future__ import annotations

import json
from collections.abc import Sized
from typing import Any

from squall.adapters.tracker import (
    MAX_EXPIRED,
    MAX_FOREIGN,
    MAX_FOREIGN_CHARS,
    MAX_GAPS,
    MAX_OTHER_THREADS,
    MAX_PAST_RUNS,
    MAX_UNMATCHED,
    RunStatus,
    RunTracker,
    kept_frame,
)
from squall.checks.history import MAX_ID_CHARS

KINDS = ["agent_started", "tool_executing", "tool_completed", "agent_thinking", "agent_completed"]


def held(tracker: RunTracker) -> dict[str, int]:
    """How many items each collection of the tracker holds, whatever its name."""
    return {
        name: len(value)
        for name, value in vars(tracker).items()
        if isinstance(value, Sized) and not isinstance(value, str)
    }


def event(kind: str, seq: int, run: str, thread: str = "t1") -> dict[str, Any]:
    return {"type": kind, "seq": seq, "run_id": run, "thread_id": thread, "ts": 0.0}


def answer(tracker: RunTracker, index: int) -> RunTracker:
    """Send message ``index`` on thread t1 and feed its ack and whole run."""
    observation = tracker.sent(f"c{index}", "t1", float(index))
    tracker.feed({"type": "ack", "client_msg_id": f"c{index}", "run_id": f"r{index}"}, index)
    for offset, kind in enumerate(KINDS):
        done = tracker.feed(event(kind, 5 * index + offset + 1, f"r{index}"), index + 0.5)
    assert done is observation
    assert observation.status is RunStatus.COMPLETED
    assert observation.seqs == list(range(5 * index + 1, 5 * index + 6))
    return tracker


def test_a_long_run_of_answered_messages_holds_the_same_whatever_its_length() -> None:
    tracker = RunTracker()
    for index in range(2 * MAX_PAST_RUNS):
        answer(tracker, index)
    halfway = held(tracker)
    for index in range(2 * MAX_PAST_RUNS, 10 * MAX_PAST_RUNS):
        answer(tracker, index)
    assert held(tracker) == halfway
    assert max(halfway.values()) == MAX_PAST_RUNS  # the past runs' ids, nothing per message
    # and the socket's one thread, with its last seq
    assert sum(halfway.values()) == MAX_PAST_RUNS + 2
    assert tracker.pending == []
    assert tracker.findings == 0
    assert (tracker.gaps, tracker.foreign_events, tracker.unmatched_errors) == ([], [], [])


def test_a_late_frame_of_a_finished_run_is_its_own_while_the_run_is_among_the_newest() -> None:
    tracker = answer(RunTracker(), 0)
    # A duplicate of its completion, then an event after it: not foreign, seq still checked.
    assert tracker.feed(event("agent_completed", 5, "r0"), 9.0) is None
    assert tracker.feed(event("agent_thinking", 6, "r0"), 9.0) is None
    assert tracker.foreign_events == []
    assert [(gap.expected, gap.got) for gap in tracker.gaps] == [(6, 5)]
    for index in range(1, MAX_PAST_RUNS + 1):
        answer(tracker, index)
    # r1 is the oldest run remembered; r0 was forgotten: its late frame is foreign now.
    assert tracker.feed(event("agent_thinking", 9_999, "r1"), 9.0) is None
    assert tracker.foreign_events == []
    late = event("agent_thinking", 10_000, "r0")
    assert tracker.feed(late, 9.0) is None
    assert tracker.foreign_events == [late]


def test_a_rejected_message_is_forgotten_and_its_late_error_is_unmatched() -> None:
    tracker = RunTracker()
    for index in range(3 * MAX_EXPIRED):
        rejected = tracker.sent(f"c{index}", "t1", 0.0)
        error = {"type": "error", "code": "queue_full", "client_msg_id": f"c{index}"}
        assert tracker.feed(error, 1.0) is rejected
        assert tracker.feed(error, 2.0) is None  # twice: the second answers nothing
    assert held(tracker)["unmatched_errors"] == MAX_UNMATCHED
    assert max(held(tracker).values()) == MAX_UNMATCHED
    assert tracker.unmatched_dropped + len(tracker.unmatched_errors) == 3 * MAX_EXPIRED
    assert tracker.unmatched_errors[-1].client_msg_id == f"c{3 * MAX_EXPIRED - 1}"


def test_messages_given_up_on_are_followed_only_the_newest() -> None:
    # A target that never answers: every message times out, for the socket's whole life.
    tracker = RunTracker()
    given_up = []
    for index in range(MAX_EXPIRED + 5):
        observation = tracker.sent(f"c{index}", "t1", float(index))
        tracker.expire(observation, index + 30.0)
        given_up.append(observation)
    assert max(held(tracker).values()) == MAX_EXPIRED
    assert tracker.pending == []
    # The newest one given up on still gets its late answer...
    newest = given_up[-1]
    tracker.feed({"type": "ack", "client_msg_id": newest.client_msg_id, "run_id": "late"}, 99)
    assert tracker.feed(event("agent_started", 1, "late"), 100.0) is None
    assert tracker.feed(event("agent_completed", 2, "late"), 101.0) is newest
    assert (newest.status, newest.events, tracker.foreign_events) == (
        RunStatus.COMPLETED,
        ["agent_started", "agent_completed"],
        [],
    )
    # ...the oldest no more: its late run is foreign, its late error unmatched.
    oldest = given_up[0]
    tracker.feed({"type": "ack", "client_msg_id": oldest.client_msg_id, "run_id": "older"}, 99)
    assert oldest.ack_at is None
    tracker.feed(event("agent_started", 3, "older"), 100.0)
    assert [frame["run_id"] for frame in tracker.foreign_events] == ["older"]
    error = {"type": "error", "code": "rate_limited", "client_msg_id": oldest.client_msg_id}
    assert tracker.feed(error, 101.0) is None
    assert [e.client_msg_id for e in tracker.unmatched_errors] == [oldest.client_msg_id]
    assert oldest.status is RunStatus.TIMED_OUT


def test_the_late_answer_of_a_message_given_up_on_lets_it_go() -> None:
    tracker = RunTracker()
    for index in range(3 * MAX_EXPIRED):
        observation = tracker.sent(f"c{index}", "t1", 0.0)
        tracker.expire(observation, 30.0)
        # Its late rejection: counted as unmatched, and nothing is left to follow.
        late = {"type": "error", "code": "frame_too_large", "message": "late"}
        assert tracker.feed(late, 31.0) is None
        assert held(tracker)["_by_client_id"] == 0
    assert tracker.unmatched_dropped + len(tracker.unmatched_errors) == 3 * MAX_EXPIRED
    # The next message's id-less rejection is its own, as ever.
    waiting = tracker.sent("next", "t1", 40.0)
    assert tracker.feed({"type": "error", "code": "frame_too_large"}, 40.5) is waiting


def test_gaps_beyond_the_bound_are_counted_and_the_newest_kept() -> None:
    tracker = RunTracker()
    tracker.sent("c0", "t1", 0.0)  # its thread: the seqs of its events are followed
    total = 3 * MAX_GAPS + 7
    for index in range(total + 1):
        tracker.feed(event("agent_thinking", 2 * index, "someone-elses"), 0.0)  # skips one
    assert len(tracker.gaps) == MAX_GAPS
    assert tracker.gaps_dropped + len(tracker.gaps) == total
    assert (tracker.gaps[-1].expected, tracker.gaps[-1].got) == (2 * total - 1, 2 * total)
    assert len(tracker.foreign_events) == MAX_FOREIGN
    assert tracker.foreign_dropped + len(tracker.foreign_events) == total + 1
    assert tracker.foreign_events[-1]["seq"] == 2 * total
    # Every gap and every foreign event, all told.
    assert tracker.findings == 2 * total + 1
    assert f"gaps={total}" in repr(tracker)
    assert f"foreign={total + 1}" in repr(tracker)


def test_unmatched_errors_beyond_the_bound_are_counted_and_the_newest_kept() -> None:
    tracker = RunTracker()
    obs = tracker.sent("c1", "t1", 0.0)
    total = 2 * MAX_UNMATCHED + 3
    for index in range(total):
        tracker.feed({"type": "error", "code": "internal", "message": f"#{index}"}, 1.0)
    assert len(tracker.unmatched_errors) == MAX_UNMATCHED
    assert tracker.unmatched_dropped == total - MAX_UNMATCHED
    assert tracker.unmatched_errors[-1].message == f"#{total - 1}"
    assert tracker.findings == total
    assert not obs.done  # the socket's own errors reject no message, however many
    assert tracker.feed({"type": "error", "code": "bad_frame"}, 2.0) is obs


def test_events_of_threads_never_sent_to_grow_nothing_but_the_foreign_count() -> None:
    """A target naming a new, long thread in every event: each is judged as foreign, and the
    tracker follows the seqs of only the first MAX_OTHER_THREADS of them, by cut ids, so it
    holds as much after 3,000 as after 1,500 (each had a seq of its own: 975 MB by 100,000)."""
    tracker = RunTracker()
    answer(tracker, 0)

    def flood(start: int, stop: int) -> None:
        for index in range(start, stop):
            thread = f"other-{index}-" + "x" * 10_000
            tracker.feed(event("agent_thinking", 1, f"run-{index}", thread), 1.0)

    flood(0, MAX_FOREIGN + 500)
    halfway = held(tracker)
    flood(MAX_FOREIGN + 500, 2 * MAX_FOREIGN + 1_000)
    assert held(tracker) == halfway
    assert len(tracker.last_seq) == 1 + MAX_OTHER_THREADS  # its own thread, the first others
    assert max(map(len, tracker.last_seq)) <= MAX_ID_CHARS
    assert tracker.threads_unfollowed == 2 * MAX_FOREIGN + 1_000 - MAX_OTHER_THREADS
    assert tracker.gaps == []
    assert tracker.foreign_dropped + len(tracker.foreign_events) == 2 * MAX_FOREIGN + 1_000
    assert tracker.findings == 2 * MAX_FOREIGN + 1_000


def test_a_foreign_event_is_kept_cut_to_a_bounded_size_with_its_thread_still_judged() -> None:
    tracker = RunTracker()
    small = event("agent_thinking", 3, "theirs", "bob-t1")
    tracker.feed(small, 1.0)
    assert tracker.foreign_events == [small]  # a small frame is kept whole
    thread = "bob-" + "\x00y" * 5_000_000  # a 10 MB thread id, with control characters
    big = {**event("agent_thinking", 4, "r" * 100_000, thread), "content": "z" * 1_000_000}
    tracker.feed(big, 2.0)
    kept = tracker.foreign_events[-1]
    size = len(json.dumps(kept, ensure_ascii=False))
    assert size <= 2 * MAX_FOREIGN_CHARS
    assert kept["type"] == "agent_thinking"
    assert kept["seq"] == 4
    # Cut, printable, marked, and still the user's ("bob-…"), so isolation judges it alike.
    assert kept["thread_id"].startswith("bob-?y?y")
    assert "cut from 10000004 chars" in kept["thread_id"]
    assert len(kept["thread_id"]) == MAX_ID_CHARS
    assert kept["thread_id"].isprintable()
    assert kept["cut"].isprintable()
    assert kept["cut"].startswith('{"type": "agent_thinking"')
    # Two long ids that differ still differ once cut.
    other = kept_frame({**big, "thread_id": thread[:-1] + "z"})
    assert other["thread_id"] != kept["thread_id"]
