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
    assert (first.get("seq"), second.get("seq"), second.get("charge")) == (1, -1, None)
    assert socket.last_seq == {"t": 1}
    # The judging reports it instead of stopping at a record it cannot read.
    verdict = check_ordering(recorder.ops, first_seq=1, resume_restarts=True)
    assert verdict.valid is False
    assert verdict.evidence[0].details["got"] == -1
    events, _ = pc.events_from_history(recorder.ops)
    assert [e.seq for e in events] == [-1, 1]
