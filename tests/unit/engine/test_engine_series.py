"""Per-second snapshots from several workers sum into one series."""

from __future__ import annotations

import dataclasses
import gc
import tracemalloc

from squall.engine.progress import describe
from squall.engine.series import SeriesAggregator, Snapshot
from squall.metrics.histogram import LatencyHistogram
from squall.metrics.result import SeriesPoint

LAG = LatencyHistogram.of([0.001]).pack()


def snap(
    worker: int,
    t: int,
    sent: int,
    latencies: list[float],
    *,
    final: bool = False,
    span: float = 1.0,
    connections: tuple[int, int] = (2, 2),
) -> Snapshot:
    return Snapshot(
        worker=worker,
        t=t,
        span=span,
        users=2,
        connections=connections[0],
        connections_peak=connections[1],
        sent=sent,
        received=sent,
        errors=0,
        latency=LatencyHistogram.of(latencies).pack() if latencies else None,
        cpu=10.0,
        lag=LAG,
        final=final,
    )


def test_a_second_is_reported_once_every_worker_sent_it() -> None:
    aggregator = SeriesAggregator(workers=2, planned_s=10)
    assert aggregator.add(snap(0, 0, 10, [0.001] * 10)) == []
    views = aggregator.add(snap(1, 0, 30, [0.003] * 30))
    assert len(views) == 1
    assert views[0].sent_per_s == 40
    assert views[0].users == 4
    assert views[0].remaining_s == 9
    assert views[0].warning is None


def test_points_merge_histograms_not_percentiles() -> None:
    aggregator = SeriesAggregator(workers=2)
    aggregator.add(snap(0, 0, 99, [0.001] * 99))
    aggregator.add(snap(1, 0, 1, [1.0]))
    (point,) = aggregator.points()
    assert point.p50 == LatencyHistogram.of([0.001]).percentile(50)
    # The one slow request is exactly the 100th of 100: p99 stays fast, max is slow.
    assert point.p99 < 0.01


def test_finished_worker_no_longer_holds_back_later_seconds() -> None:
    aggregator = SeriesAggregator(workers=2)
    aggregator.add(snap(0, 0, 1, []))
    aggregator.add(snap(1, 0, 1, []))
    aggregator.add(snap(1, 1, 1, [], final=True, span=0.5))
    views = aggregator.add(snap(0, 1, 5, []))
    assert [v.elapsed_s for v in views] == [2.0]
    views = aggregator.add(snap(0, 2, 5, [], final=True, span=0.25))
    assert [v.elapsed_s for v in views] == [2.25]
    assert views[0].sent_per_s == 20


def test_snapshots_cross_as_dictionaries_with_their_exact_extremes() -> None:
    # 8,000..8,003 µs share a slot, which HdrHistogram reads as 8.003 ms.
    sent = snap(0, 0, 4, [0.008] * 4)
    received = Snapshot.from_dict(sent.to_dict())
    assert received == sent
    assert Snapshot.from_dict(snap(0, 0, 0, []).to_dict()).latency is None
    aggregator = SeriesAggregator(workers=1)
    (view,) = aggregator.add(received)
    assert (view.p50, view.p99) == (0.008, 0.008)
    (point,) = aggregator.points()
    assert (point.p50, point.p99) == (0.008, 0.008)


def test_a_second_in_which_nothing_completed_has_no_percentiles() -> None:
    aggregator = SeriesAggregator(workers=1, planned_s=10)
    (quiet,) = aggregator.add(snap(0, 0, 5, []))
    assert (quiet.p50, quiet.p99) == (None, None)  # nothing timed yet in the run
    assert "p50 — p99 —" in describe(quiet)
    (busy,) = aggregator.add(snap(0, 1, 5, [0.002] * 5))
    (later,) = aggregator.add(snap(0, 2, 5, []))
    assert (busy.p50, later.p50) == (0.002, 0.002)  # the run's so far
    assert "p50 2.0ms p99 2.0ms" in describe(later)
    points = aggregator.points()
    assert [(p.p50, p.p99) for p in points] == [(None, None), (0.002, 0.002), (None, None)]
    restored = [SeriesPoint.from_dict(p.to_dict()) for p in points]
    assert restored == list(points)


def test_connections_at_the_end_of_a_second_and_its_peak_sum_over_workers() -> None:
    aggregator = SeriesAggregator(workers=2, planned_s=10)
    aggregator.add(snap(0, 0, 5, [0.001], connections=(0, 40)))
    (churned,) = aggregator.add(snap(1, 0, 5, [0.001], connections=(3, 35)))
    assert (churned.connections, churned.connections_peak) == (3, 75)
    assert " users 4 conns 3 (peak 75) sent " in describe(churned)
    aggregator.add(snap(0, 1, 5, [0.001], connections=(6, 6)))
    (steady,) = aggregator.add(snap(1, 1, 5, [0.001], connections=(6, 6)))
    assert " users 4 conns 12 sent " in describe(steady)  # no peak above the count
    # The report's series keeps both, as the live line shows them.
    points = aggregator.points()
    assert [(p.connections, p.connections_peak) for p in points] == [(3, 75), (12, 12)]
    assert [SeriesPoint.from_dict(p.to_dict()) for p in points] == list(points)


def test_a_series_point_of_an_older_report_has_no_connections() -> None:
    older = {"t": 0, "users": 5, "sent_per_s": 10.0, "received_per_s": 10.0, "p50": 0.01,
             "p99": 0.02, "errors": 0}  # fmt: skip
    point = SeriesPoint.from_dict(older)
    assert (point.connections, point.connections_peak) == (None, None)


def test_one_saturated_worker_warns_though_the_others_idle() -> None:
    # The workers' lag and CPU were pooled: one worker's stalls, diluted by an idle one's
    # samples, raised no live warning, while the result said saturated.
    stalled = LatencyHistogram.of([0.001] * 50 + [0.12] * 3).pack()
    idle = LatencyHistogram.of([0.001] * 200).pack()
    aggregator = SeriesAggregator(workers=2)
    aggregator.add(dataclasses.replace(snap(0, 0, 4, [0.008]), lag=idle))
    (view,) = aggregator.add(dataclasses.replace(snap(1, 0, 4, [0.008]), lag=stalled))
    assert view.warning is not None
    assert "worker 1: event-loop lag p99" in view.warning


def test_a_long_run_keeps_no_histogram_per_second() -> None:
    # Every second kept its whole histogram (188 KB) for the run's end: an 8-minute soak's
    # parent grew from 85 MB to 313 MB, about 0.7 GB an hour.
    series = SeriesAggregator(workers=2)
    for t in range(3):  # allocations made once (the run's total, caches) come first
        series.add(snap(0, t, 1, [0.010]))
        series.add(snap(1, t, 1, [0.020]))
    tracemalloc.start()
    try:
        gc.collect()  # hdrh's histograms are cycles: freed by the collector, not at once
        before = tracemalloc.get_traced_memory()[0]
        for t in range(3, 23):
            series.add(snap(0, t, 1, [0.010]))
            series.add(snap(1, t, 1, [0.020]))
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 1_000_000, f"{grown / 20:,.0f} bytes a second kept"
    points = series.points()
    assert len(points) == 23
    both = LatencyHistogram.of([0.010, 0.020])  # the second's two workers
    assert (points[-1].p50, points[-1].p99) == (both.percentile(50), both.percentile(99))
