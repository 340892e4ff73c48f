from __future__ import annotations

import json
from typing import Any

from squall.adapters.tracker import (
    ERROR_CODES,
    FRAME_REJECTIONS,
    REFUSAL_CLOSES,
    RunStatus,
    RunTracker,
    ServerError,
    announced,
    refusal,
)
from squall.target import errors, protocol
from squall.target.errors import TargetError
from squall.target.ws import CloseCode


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
    # Each sample says which it is: a duplicate read as one more gap.
    assert [g.describe() for g in tracker.gaps] == [
        "thread t1: expected seq 2, got 3 (a gap: 1 missing)",
        "thread t1: expected seq 4, got 3 (a duplicate, or an event that came late: seq 3 was "
        "due before)",
    ]


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
    assert tracker.unmatched_errors == [ServerError(code="bad_frame", message="")]


def idless(code: str, message: str = "why") -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message}


def test_an_error_without_ids_rejects_the_only_message_awaiting_its_answer() -> None:
    # The platform could not read the frame (too large), so it could not echo its id.
    tracker = RunTracker()
    obs = tracker.sent("c1", "t1", 0.0)
    assert tracker.feed(idless("frame_too_large"), 0.25) is obs
    assert (obs.status, obs.error_code, obs.response_time) == (
        RunStatus.REJECTED,
        "frame_too_large",
        0.25,
    )
    assert tracker.unmatched_errors == []
    assert tracker.pending == []


def test_a_message_acknowledged_no_longer_awaits_an_answer() -> None:
    tracker = RunTracker()
    running = tracker.sent("c1", "t1", 0.0)
    tracker.feed({"type": "ack", "client_msg_id": "c1", "run_id": "r1"}, 0.1)
    rejected = tracker.sent("c2", "t1", 0.2)
    assert tracker.feed(idless("bad_frame"), 0.3) is rejected
    assert rejected.error_code == "bad_frame"
    assert not running.done


def test_an_error_without_ids_rejects_nothing_while_several_messages_await_answers() -> None:
    # The one given up on may be the frame the error answers: neither is rejected.
    tracker = RunTracker()
    given_up = tracker.sent("c1", "t1", 0.0)
    tracker.expire(given_up, 30.0)
    waiting = tracker.sent("c2", "t1", 31.0)
    assert tracker.feed(idless("bad_frame", "not JSON"), 31.5) is None
    assert not waiting.done
    assert tracker.unmatched_errors == [ServerError(code="bad_frame", message="not JSON")]
    assert tracker.unmatched_errors[0].describe() == "error bad_frame naming no message: not JSON"


def test_the_late_answer_of_the_message_given_up_on_is_not_pinned_on_the_next() -> None:
    tracker = RunTracker()
    given_up = tracker.sent("c1", "t1", 0.0)
    tracker.expire(given_up, 30.0)
    assert tracker.feed(idless("frame_too_large"), 31.0) is None  # c1's, too late
    assert given_up.status is RunStatus.TIMED_OUT
    assert [e.code for e in tracker.unmatched_errors] == ["frame_too_large"]
    # c1 has its answer now: the next id-less rejection is the next message's.
    waiting = tracker.sent("c2", "t1", 32.0)
    assert tracker.feed(idless("frame_too_large"), 32.5) is waiting
    assert waiting.status is RunStatus.REJECTED


def test_errors_of_the_sockets_own_work_reject_no_message() -> None:
    tracker = RunTracker()
    obs = tracker.sent("c1", "t1", 0.0)
    frames = [
        idless("internal", "a replay failed"),  # a background task of the socket
        idless("unavailable", "Redis is unreachable"),  # a resync
        {**idless("invalid_field"), "thread_id": "t1"},  # a resume's answer
        {**idless("not_found"), "thread_id": "t9"},
    ]
    for frame in frames:
        assert tracker.feed(frame, 1.0) is None
    assert not obs.done
    assert [(e.code, e.thread_id) for e in tracker.unmatched_errors] == [
        ("internal", None),
        ("unavailable", None),
        ("invalid_field", "t1"),
        ("not_found", "t9"),
    ]
    assert tracker.unmatched_errors[3].describe() == (
        "error not_found for thread t9, naming no message: why"
    )
    # ...and the message is still answered as usual.
    assert tracker.feed({"type": "error", "code": "queue_full", "client_msg_id": "c1"}, 2) is obs
    assert obs.error_code == "queue_full"


def test_the_late_rejection_of_a_message_given_up_on_is_kept() -> None:
    tracker = RunTracker()
    obs = tracker.sent("c1", "t1", 0.0)
    tracker.expire(obs, 30.0)
    assert tracker.feed({**idless("rate_limited"), "client_msg_id": "c1"}, 31.0) is None
    assert obs.status is RunStatus.TIMED_OUT
    (late,) = tracker.unmatched_errors
    assert late.describe() == "error rate_limited for message c1, which awaits no answer: why"


def test_frame_rejections_are_the_codes_the_platform_gives_frames_it_cannot_read() -> None:
    raws: list[str | bytes] = [
        "x" * 101,  # over max_frame_bytes
        b"\xff",  # not UTF-8
        "[1]",  # not an object
        '{"type": 1}',
        '{"type": "shout"}',
        '{"type": "user_message", "thread_id": "t", "client_msg_id": "c"}',  # no content
        '{"type": "user_message", "thread_id": "t", "client_msg_id": "c", "content": "long"}',
    ]
    codes = set()
    for raw in raws:
        try:
            protocol.parse_frame(raw, max_frame_bytes=100, max_content_chars=3)
        except TargetError as exc:
            codes.add(exc.code)
    assert codes == FRAME_REJECTIONS


def test_expire_marks_unknown_outcome() -> None:
    tracker = RunTracker()
    obs = tracker.sent("c1", "t1", 0.0)
    assert tracker.pending == [obs]
    tracker.expire(obs, 30.0)
    assert obs.status is RunStatus.TIMED_OUT
    assert tracker.pending == []


ADMISSION = ServerError(code="too_many_sockets", message="user 'u' already has 1 open sockets")


def test_a_refusal_is_a_refusal_close_whose_reason_or_unread_error_names_a_code() -> None:
    # The reason names the code, whether or not the error frame before it was unread.
    assert refusal(1008, "too_many_sockets", []) == "too_many_sockets"
    assert refusal(1008, "too_many_sockets", [ADMISSION]) == "too_many_sockets"
    assert refusal(1013, "unavailable", []) == "unavailable"
    # A reason that is no code: the last unread error naming nothing names it.
    late = ServerError(code="rate_limited", message="late", client_msg_id="c1")
    assert refusal(1008, "", [ADMISSION, late]) == "too_many_sockets"
    assert refusal(1013, "Redis down", [ServerError(code="unavailable", message="")]) == (
        "unavailable"
    )


def test_other_closes_refuse_nothing() -> None:
    slow = "slow consumer: 1000 frames waiting (SQUALL_SOCKET_SEND_QUEUE)"
    assert refusal(1008, slow, []) is None
    # An error echoing an id answers a message, not the socket's admission.
    assert refusal(1008, slow, [ServerError(code="queue_full", message="", thread_id="t")]) is None
    # Not a refusal close, though the reason is a code (1011 internal) or an error is unread.
    assert refusal(1011, "internal", [ServerError(code="internal", message="")]) is None
    assert refusal(1000, "too_many_sockets", [ADMISSION]) is None
    assert refusal(None, "", [ADMISSION]) is None


def test_a_refusal_is_announced_by_the_last_error_naming_nothing() -> None:
    replay = ServerError(code="not_found", message="", thread_id="t9")
    assert announced([ADMISSION], "too_many_sockets")
    assert announced([ADMISSION, replay], "too_many_sockets")  # one with ids is no announcement
    assert not announced([], "too_many_sockets")
    assert not announced([replay], "not_found")
    assert not announced([ADMISSION], "unavailable")
    # An older id-less error of the same code is not the frame just before the close.
    assert not announced([ADMISSION, ServerError(code="internal", message="")], "too_many_sockets")


def test_error_codes_and_refusal_closes_are_the_platforms() -> None:
    sent = {
        cls.code
        for cls in (TargetError, *vars(errors).values())
        if isinstance(cls, type) and issubclass(cls, TargetError)
    }
    # A stale fencing token is the platform's own business: never sent to a client.
    assert sent - {errors.StaleFence.code} == ERROR_CODES
    assert {CloseCode.POLICY_VIOLATION, CloseCode.TRY_AGAIN_LATER} == REFUSAL_CLOSES


def test_a_context_that_is_no_object_or_holds_no_integers_is_not_taken() -> None:
    # The run itself still counts: only the context's sizes are left out.
    for context in ("big", [1, 2], 5, {"chars": "lots", "tokens": True}, {"chars": 2.5}):
        tracker = RunTracker()
        obs = tracker.sent("c1", "t1", now=0.0)
        tracker.feed({"type": "ack", "client_msg_id": "c1", "run_id": "r1"}, 0.0)
        tracker.feed(event("agent_started", 1, context=context), 1.0)
        done = tracker.feed(event("agent_completed", 2, status="completed"), 2.0)
        assert done is obs, context
        assert (obs.context_chars, obs.context_tokens) == (None, None), context
        assert obs.status is RunStatus.COMPLETED


def test_an_event_with_no_integer_seq_is_an_ordering_finding() -> None:
    # Missing or ill-typed seqs were skipped: no gap, and the run counted as delivered.
    for bad in (None, 1.5, True, "2"):
        tracker = RunTracker()
        obs = tracker.sent("c1", "t1", now=0.0)
        tracker.feed({"type": "ack", "client_msg_id": "c1", "run_id": "r1"}, 0.0)
        tracker.feed(event("agent_started", 1), 1.0)
        frame = event("tool_executing", 2)
        if bad is None:
            del frame["seq"]
        else:
            frame["seq"] = bad
        tracker.feed(frame, 2.0)
        [gap] = tracker.gaps
        assert (gap.expected, gap.got) == (2, None), bad
        shown = "null" if bad is None else json.dumps(bad)
        assert (
            gap.describe()
            == f"thread t1: an event whose seq is {shown}, not an integer (expected 2)"
        )
        assert tracker.findings == 1
        assert obs.seqs == [1]
        assert tracker.last_seq == {"t1": 1}  # the next event is still expected as 2


def test_a_refused_token_is_a_refusal_of_its_own() -> None:
    # Counted as errors.closed ("code 4401, reason 'token rejected'"), with no next step.
    assert refusal(4401, "token rejected: Signature verification failed", []) == "unauthorized"
    assert refusal(4401, "", [ADMISSION]) == "unauthorized"
