"""The recorder and the exact merge of per-process states."""

from __future__ import annotations

import json

from squall.metrics.histogram import LatencyHistogram
from squall.metrics.recorder import (
    Recorder,
    RecorderState,
    error_summaries,
    merge_states,
    to_metrics,
)
from squall.metrics.result import Counter, Gauge, Rate, Trend


def test_merge_adds_counts_rates_and_histograms_exactly() -> None:
    first, second = Recorder(), Recorder()
    for value in (0.001, 0.002, 0.003):
        first.trend("response_time", value)
    second.trend("response_time", 1.0)
    first.count("messages_sent", 3)
    second.count("messages_sent")
    first.rate("success", True)
    second.rate("success", False)
    first.gauge("users", 5)
    first.gauge("users", 2)
    second.gauge("users", 4)
    merged = merge_states([first.state(), second.state()])
    metrics = to_metrics(merged, duration_s=2.0)
    assert metrics["messages_sent"] == Counter("messages_sent", 4, 2.0)
    assert metrics["success"] == Rate("success", 1, 2)
    assert metrics["users"] == Gauge("users", 4.0, 2.0, 5.0)
    trend = metrics["response_time"]
    assert isinstance(trend, Trend)
    union = LatencyHistogram.of([0.001, 0.002, 0.003, 1.0])
    assert trend.encoded == union.encode()


def test_errors_are_counted_by_kind_with_few_samples() -> None:
    recorder = Recorder()
    for n in range(5):
        recorder.error("timeout", f"late {n}")
    recorder.error("closed", "code 1011")
    state = merge_states([recorder.state(), recorder.state()])
    assert state.counters["errors"] == 12
    summaries = error_summaries(state)
    assert [(s.kind, s.count) for s in summaries] == [("timeout", 10), ("closed", 2)]
    assert summaries[0].samples == ("late 0", "late 1", "late 2")


def test_take_interval_reports_deltas() -> None:
    recorder = Recorder()
    recorder.count("messages_sent", 3)
    recorder.trend("round_trip", 0.01)
    first = recorder.take_interval()
    assert (first.sent, first.received, first.errors) == (3, 0, 0)
    assert LatencyHistogram.decode(first.latency).count == 1
    recorder.count("messages_sent", 2)
    second = recorder.take_interval()
    assert second.sent == 2
    assert second.latency == ""


def test_state_round_trips_through_json() -> None:
    recorder = Recorder()
    recorder.trend("ws_connect", 0.004)
    recorder.rate("delivery", True)
    recorder.gauge("violations", 0)
    recorder.error("connect", "refused")
    state = recorder.state()
    assert RecorderState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
