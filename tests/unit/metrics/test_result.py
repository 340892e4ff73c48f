"""Result objects round-trip through JSON exactly."""

from __future__ import annotations

import json

import pytest

from squall.metrics.histogram import LatencyHistogram
from squall.metrics.result import (
    Counter,
    ErrorSummary,
    Gauge,
    GeneratorHealth,
    Rate,
    ResultFormatError,
    RunResult,
    SeriesPoint,
    Trend,
    metric_from_dict,
)


def sample_result() -> RunResult:
    trend = Trend.from_histogram("response_time", LatencyHistogram.of([0.01, 0.02, 0.5]))
    return RunResult(
        scenario="golden",
        params={"users": 75, "messages": 15},
        workload={"model": "closed", "users": 75},
        started_at=1_700_000_000.5,
        ended_at=1_700_000_030.5,
        duration_s=30.0,
        processes=2,
        metrics={
            "response_time": trend,
            "messages_sent": Counter("messages_sent", 1125, 37.5),
            "success": Rate("success", 1120, 1125),
            "users": Gauge("users", 75.0, 0.0, 75.0),
        },
        series=(SeriesPoint(0, 25, 30.0, 29.0, 0.01, 0.5, 1),),
        errors=(ErrorSummary("timeout", 5, ("no message within 10 s",)),),
        generator=GeneratorHealth(True, ("worker 0: CPU 95 %",), 0.001, 0.002, 95.0, 99.0),
        interrupted=True,
        interrupted_reason="sigint",
    )


def test_run_result_round_trips_through_json() -> None:
    result = sample_result()
    restored = RunResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert restored == result
    assert restored.trend("response_time").percentile(100) == pytest.approx(0.5, rel=1e-3)
    assert restored.rate("success").rate == pytest.approx(1120 / 1125)
    assert restored.count("messages_sent") == 1125
    assert restored.count("never_recorded") == 0
    assert restored.generator.warning is not None
    assert "load generator saturated" in restored.generator.warning


def test_a_counter_without_a_rate_round_trips() -> None:
    counter = Counter("operations", 120, None)
    assert counter.to_dict()["per_second"] is None
    assert metric_from_dict(json.loads(json.dumps(counter.to_dict()))) == counter


def test_trend_percentiles_come_from_the_histogram() -> None:
    trend = Trend.from_histogram("t", LatencyHistogram.of([i / 100 for i in range(1, 101)]))
    assert trend.count == 100
    assert trend.p50 == pytest.approx(0.5, rel=1e-3)
    assert trend.percentile(75) == pytest.approx(0.75, rel=1e-3)
    assert trend.p999 == pytest.approx(1.0, rel=1e-3)


def test_a_rate_of_nothing_has_no_value_not_zero() -> None:
    empty = Rate("delivery", 0, 0)
    assert empty.rate is None
    written = json.loads(json.dumps(empty.to_dict()))
    assert (written["rate"], written["total"], written["passes"]) == (None, 0, 0)
    assert metric_from_dict(written) == empty
    assert Rate("delivery", 0, 3).rate == 0.0  # checked and all failed: 0 %, a figure


def test_an_older_reports_zero_rate_of_nothing_reads_as_no_samples() -> None:
    older = {"type": "rate", "name": "delivery", "passes": 0, "total": 0, "rate": 0.0}
    restored = metric_from_dict(older)
    assert restored == Rate("delivery", 0, 0)
    assert isinstance(restored, Rate)
    assert restored.rate is None


STATISTICS = ("min", "max", "mean", "stdev", "p50", "p90", "p95", "p99", "p999")


def test_a_trend_with_no_samples_has_no_statistics_not_zeros() -> None:
    empty = Trend.from_histogram("response_time", LatencyHistogram())
    assert empty.count == 0
    assert [getattr(empty, key) for key in STATISTICS] == [None] * len(STATISTICS)
    written = json.loads(json.dumps(empty.to_dict()))
    assert written["count"] == 0
    assert {key: written[key] for key in STATISTICS} == dict.fromkeys(STATISTICS)
    restored = metric_from_dict(written)
    assert restored == empty
    assert isinstance(restored, Trend)
    assert restored.histogram.count == 0
    one = Trend.from_histogram("response_time", LatencyHistogram.of([0.002]))
    assert (one.count, one.min, one.p99, one.max) == (1, 0.002, 0.002, 0.002)


def test_an_older_reports_zero_trend_of_nothing_reads_as_no_samples() -> None:
    empty = Trend.from_histogram("response_time", LatencyHistogram())
    older = {**empty.to_dict(), **dict.fromkeys(STATISTICS, 0.0)}  # as an older squall wrote it
    restored = metric_from_dict(older)
    assert isinstance(restored, Trend)
    assert restored == empty
    assert (restored.mean, restored.p95, restored.max) == (None, None, None)


def test_a_trend_read_back_keeps_its_exact_extremes() -> None:
    # 8,000..8,003 µs share a slot, which the encoding alone reads as 8.003 ms; a
    # percentile inside [min, max] still reads its slot's highest value.
    trend = Trend.from_histogram("t", LatencyHistogram.of([0.008] * 8 + [0.0123]))
    assert (trend.min, trend.max, trend.p50, trend.p999) == (0.008, 0.0123, 0.008003, 0.0123)
    restored = metric_from_dict(json.loads(json.dumps(trend.to_dict())))
    assert isinstance(restored, Trend)
    assert restored.histogram.extremes_us == (8000, 12_300)
    assert [restored.percentile(p) for p in (0, 50, 99.99, 100)] == [
        0.008,
        0.008003,
        0.0123,
        0.0123,
    ]


def test_a_trend_stored_before_the_extremes_were_exact_reads_as_before() -> None:
    # Written by an earlier version: min, max and percentiles are the bounds of their slots.
    histogram = LatencyHistogram.of([0.008] * 8 + [0.0123])
    old = Trend.from_histogram("t", histogram).to_dict()
    old.update(min=0.008, max=0.012303, p50=0.008003, p999=0.012303)
    trend = Trend.from_dict(old)
    assert trend.histogram.extremes_us == (8000, 12_303)
    assert [trend.percentile(p) for p in (0, 50, 100)] == [0.008, 0.008003, 0.012303]
    assert trend.percentile(50) == LatencyHistogram.decode(histogram.encode()).percentile(50)


def test_unknown_metric_and_missing_fields_are_reported() -> None:
    with pytest.raises(ResultFormatError, match="type 'histo'"):
        metric_from_dict({"type": "histo", "name": "x"})
    with pytest.raises(ResultFormatError, match="no 'count' field"):
        Counter.from_dict({"name": "x", "per_second": 1.0})
    result = sample_result()
    with pytest.raises(KeyError, match="recorded no metric 'nope'"):
        result.metric("nope")
    with pytest.raises(TypeError, match="is a Counter, not a Trend"):
        result.trend("messages_sent")
