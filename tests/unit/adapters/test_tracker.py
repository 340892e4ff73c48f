from __future__ import annotations

from typing import Any

from squall.adapters.tracker import RunStatus, RunTracker


def event(kind: str, seq: int, run: str = "r1", thread: str = "t1", **extra: Any) -> dict[str, Any]:
    return {"type": kind, "seq": seq, "run_id": run, "thread_id": thread, "ts": 0.0, **extra}


def full_run(tracker: RunTracker, run: str, first_seq: int, start: float) -> None:
    kinds = ["agent_started", "tool_executing", "tool_completed", "agent_thinking"]
    for offset, kind in enumerate(kinds):
        tracker.feed(event(kind, first_seq + offset, run), start + offset)
    tracker.feed(
        event("agent_completed", first_seq + 4, run, status="completed", charge=1), start + 4
    )


def test_times_are_measured_from_send() -> None:
    tracker = RunTracker()
    obs = tracker.sent("c1", "t1", now=10.0)
    tracker.feed({"type": "ack", "client_msg_id": "c1", "run_id": "r1"}, 10.5)
    tracker.feed(event("agent_started", 1, context={"chars": 2500, "tokens": 625}), 11.0)
    assert not obs.done
    done = tracker.feed(event("agent_completed", 2, status="completed", charge=1), 13.0)
    assert done is obs
    assert (obs.ack_time, obs.first_event_time, obs.response_time) == (0.5, 1.0, 3.0)
    assert obs.status is RunStatus.COMPLETED
    assert obs.context_chars == 2500
    assert obs.charge == 1
    assert obs.seqs == [1, 2]


def test_gapless_runs_report_no_gaps() -> None:
    tracker = RunTracker()
    for n, run in enumerate(["r1", "r2"]):
        tracker.sent(f"c{n}", "t1", 0.0)
        tracker.feed({"type": "ack", "client_msg_id": f"c{n}", "run_id": run}, 0.0)
        full_run(tracker, run, first_seq=1 + 5 * n, start=float(n))
    assert tracker.gaps == []
    assert tracker.last_seq == {"t1": 10}


def test_gap_and_duplicate_are_reported() -> None:
    tracker = RunTracker()
    tracker.sent("c1", "t1", 0.0)
    tracker.feed({"type": "ack", "client_msg_id": "c1", "run_id": "r1"}, 0.0)
    tracker.feed(event("agent_started", 1), 1.0)
    tracker.feed(event("tool_executing", 3), 1.0)
    tracker.feed(event("tool_completed", 3), 1.0)
    assert [(g.expected, g.got) for g in tracker.gaps] == [(2, 3), (4, 3)]


def test_resume_sets_expected_next_seq() -> None:
    tracker = RunTracker()
    tracker.resumed("t1", after_seq=7)
    tracker.feed(event("agent_thinking", 8, run="other"), 0.0)
    assert tracker.gaps == []
    assert len(tracker.foreign_events) == 1


def test_error_for_a_message_rejects_it() -> None:
    tracker = RunTracker()
    obs = tracker.sent("c1", "t1", 0.0)
    done = tracker.feed({"type": "error", "code": "insufficient_credits", "client_msg_id": "c1"}, 1)
    assert done is obs
    assert obs.status is RunStatus.REJECTED
    assert obs.error_code == "insufficient_credits"
    tracker.feed({"type": "error", "code": "bad_frame"}, 2.0)
    assert len(tracker.unmatched_errors) == 1


def test_expire_marks_unknown_outcome() -> None:
    tracker = RunTracker()
    obs = tracker.sent("c1", "t1", 0.0)
    assert tracker.pending == [obs]
    tracker.expire(obs, 30.0)
    assert obs.status is RunStatus.TIMED_OUT
    assert tracker.pending == []
