"""How a RecordingSocket records the frames it receives, malformed ones included."""

from __future__ import annotations

import itertools

from squall.checks.history import HistoryRecorder
from squall.checks.ordering import check_ordering
from squall.scenarios import platform_checks as pc
from squall.scenarios.platform_clients import RecordingSocket, Runs


def test_a_boolean_seq_or_charge_is_recorded_as_bad_data_not_an_integer() -> None:
    ticks = itertools.count()
    recorder = HistoryRecorder(clock=lambda: next(ticks))
    socket = RecordingSocket("s", "alice", recorder, Runs(recorder))
    frame = {"thread_id": "t", "run_id": "r", "status": "completed"}
    socket._on_frame({**frame, "type": "agent_started", "seq": 1})
    socket._on_frame({**frame, "type": "agent_completed", "seq": True, "charge": True})
    [first, second] = recorder.ops
    assert (first.get("seq"), second.get("seq"), second.get("charge")) == (1, True, None)
    assert socket.last_seq == {"t": 1}
    # The judging reports it instead of stopping at a record it cannot read.
    verdict = check_ordering(recorder.ops, first_seq=1, resume_restarts=True)
    assert verdict.valid is False
    assert [e.kind for e in verdict.evidence] == ["malformed-seq"]
    assert verdict.evidence[0].details["raw"] == "true"
    assert (verdict.counts["malformed_seqs"], verdict.counts["duplicates"]) == (1, 0)
    events, divergent = pc.events_from_history(recorder.ops)
    assert ([e.seq for e in events], divergent) == ([1], [])
    # The checks that place events by seq leave it out rather than stop at it.
    assert pc.against_stored(recorder.ops, events) == []
    assert pc.check_delivery(recorder.ops, events, {"t": [{"s"}]}).valid is True


def test_an_event_without_seq_is_recorded_without_one() -> None:
    ticks = itertools.count()
    recorder = HistoryRecorder(clock=lambda: next(ticks))
    socket = RecordingSocket("s", "alice", recorder, Runs(recorder))
    socket._on_frame({"type": "agent_started", "thread_id": "t", "run_id": "r"})
    [event] = recorder.ops
    assert "seq" not in event.value
    assert socket.last_seq == {}
    [evidence] = check_ordering(recorder.ops, first_seq=1).evidence
    assert (evidence.kind, evidence.details["raw"]) == ("malformed-seq", None)
