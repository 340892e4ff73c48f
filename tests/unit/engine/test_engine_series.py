"""Per-second snapshots from several workers sum into one series."""

from __future__ import annotations

from squall.engine.series import SeriesAggregator, Snapshot
from squall.metrics.histogram import LatencyHistogram

LAG = LatencyHistogram.of([0.001]).encode()


def snap(
    worker: int,
    t: int,
    sent: int,
    latencies: list[float],
    *,
    final: bool = False,
    span: float = 1.0,
) -> Snapshot:
    return Snapshot(
        worker=worker,
        t=t,
        span=span,
        users=2,
        connections=2,
        sent=sent,
        received=sent,
        errors=0,
        latency=LatencyHistogram.of(latencies).encode() if latencies else "",
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
