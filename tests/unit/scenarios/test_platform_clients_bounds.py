"""What a RecordingSocket keeps of what a target pushes stays bounded, and says so."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from squall.checks.history import (
    EVENTS_CUT,
    EVENTS_UNRECORDED,
    MAX_ID_CHARS,
    HistoryRecorder,
    Op,
)
from squall.checks.isolation import check_isolation
from squall.checks.ordering import check_ordering
from squall.scenarios import platform_clients
from squall.scenarios.platform_clients import (
    MAX_EARLY,
    MAX_SOCKET_EVENTS,
    RecordingSocket,
    Runs,
)


def recording(label: str = "s", runs: Runs | None = None) -> tuple[RecordingSocket, Runs]:
    ticks = itertools.count()
    recorder = runs.recorder if runs is not None else HistoryRecorder(clock=lambda: next(ticks))
    runs = runs if runs is not None else Runs(recorder)
    return RecordingSocket(label, "alice", recorder, runs), runs


def thinking(seq: int, thread: str = "t", run: str = "r") -> dict[str, Any]:
    return {"type": "agent_thinking", "thread_id": thread, "run_id": run, "seq": seq}


def test_the_ids_an_event_carries_are_recorded_cut_and_marked() -> None:
    socket, runs = recording()
    thread, run = "t" + "x" * 200_000, "r" + "\n" * 50_000
    socket._on_frame(
        {
            "type": "agent_completed",
            "thread_id": thread,
            "run_id": run,
            "seq": "9" * 100_000,
            "status": "s" * 10_000,
        }
    )
    [op] = runs.recorder.ops
    for key in ("thread", "run", "seq", "status"):
        value = op.str_value(key)
        assert len(value) <= MAX_ID_CHARS
        assert value.isprintable()
        assert "…[cut from" in value
    assert op.str_value("thread").startswith("txxx")
    assert len(json.dumps(op.to_dict())) < 2_000
    # Followed under the cut id, consistently.
    assert list(socket.last_seq) == []
    assert list(socket.seen_types) == [op.str_value("run")]
    # A short id, as the reference platform's, is recorded as sent.
    socket._on_frame(thinking(1, "alice-t", "run-1"))
    assert runs.recorder.ops[-1].value["thread"] == "alice-t"


def test_a_socket_stops_recording_events_past_its_bound_and_counts_the_rest() -> None:
    socket, runs = recording()
    extra = 500
    for seq in range(1, MAX_SOCKET_EVENTS + extra + 1):
        socket._on_frame(thinking(seq, thread=f"t-{seq}", run=f"r-{seq}"))
    recorded = [op for op in runs.recorder.ops if op.f == "event"]
    assert len(recorded) == MAX_SOCKET_EVENTS
    [cut] = [op for op in runs.recorder.ops if op.f == EVENTS_CUT]
    assert cut.value["recorded"] == MAX_SOCKET_EVENTS
    assert socket.events_unrecorded == extra
    # What it follows of threads and runs stays bounded too.
    assert len(socket.last_seq) == len(socket.seen_types) == MAX_SOCKET_EVENTS
    socket.expire()
    socket.expire()  # told once
    [told] = [op for op in runs.recorder.ops if op.f == EVENTS_UNRECORDED]
    assert told.value["events"] == extra


def cut_history(extra: int) -> tuple[Op, ...]:
    """One socket of alice that received its own thread's events in order, more than it
    may record."""
    socket, runs = recording()
    for seq in range(1, MAX_SOCKET_EVENTS + extra + 1):
        socket._on_frame(thinking(seq))
    socket.expire()
    return runs.recorder.ops


def test_a_cut_history_fails_ordering_and_isolation_even_when_what_was_kept_is_fine() -> None:
    ops = cut_history(extra=7)
    ordering = check_ordering(ops, first_seq=1, resume_restarts=True)
    isolation = check_isolation(ops, thread_owner={"t": "alice"}, socket_user={"s": "alice"})
    for verdict in (ordering, isolation):
        assert verdict.valid is False
        assert [e.kind for e in verdict.evidence] == ["history-cut"]
        assert verdict.counts["events_unrecorded"] == 7
        assert "history was cut" in verdict.summary
        assert "7 more were not recorded" in verdict.summary
    assert ordering.counts["events"] == MAX_SOCKET_EVENTS
    assert ordering.counts["gaps"] == 0


def test_the_sockets_together_record_at_most_the_scenarios_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(platform_clients, "MAX_EVENTS", 30)
    first, runs = recording("a")
    second, _ = recording("b", runs)
    for seq in range(1, 21):
        first._on_frame(thinking(seq))
        second._on_frame(thinking(seq))
    assert runs.events_recorded == 30
    assert (first.events_unrecorded, second.events_unrecorded) == (5, 5)
    assert {op.process for op in runs.recorder.ops if op.f == EVENTS_CUT} == {"a", "b"}


def test_completions_of_runs_nobody_started_are_remembered_only_up_to_a_bound() -> None:
    socket, runs = recording()
    for index in range(MAX_EARLY + 2_000):
        socket._on_frame({**thinking(index + 1, run=f"x-{index}"), "type": "agent_completed"})
    assert len(runs.early) == len(runs.completed) == MAX_EARLY
    # One that is acknowledged and then completed still completes, as ever.
    invoke = runs.recorder.invoke("s/m1/run", "run", {})
    runs.by_message["m1"] = invoke
    runs.acked("m1", "mine")
    socket._on_frame({**thinking(1, run="mine"), "type": "agent_completed", "status": "completed"})
    assert "mine" in runs.completed
    assert runs.recorder.ops[-1].type.value == "ok"
