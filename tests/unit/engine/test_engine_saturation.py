"""Saturation verdicts from loop-lag and CPU samples."""

from __future__ import annotations

from squall.engine.saturation import SaturationBounds, assess, merge_health
from squall.metrics.histogram import LatencyHistogram
from squall.metrics.result import SATURATION_WARNING


def test_healthy_generator_is_not_saturated() -> None:
    health = assess(LatencyHistogram.of([0.001] * 100), [20.0, 35.0, 40.0])
    assert not health.saturated
    assert health.warning is None
    assert health.cpu_max_percent == 40.0


def test_loop_lag_above_bound_saturates() -> None:
    lag = LatencyHistogram.of([0.001] * 90 + [0.2] * 10)
    health = assess(lag, [10.0])
    assert health.saturated
    assert "event-loop lag p99" in health.reasons[0]
    assert health.warning is not None
    assert health.warning.startswith(SATURATION_WARNING)


def test_one_stall_in_a_short_run_does_not_saturate_but_two_do() -> None:
    # A sub-second scenario has a handful of 50 ms ticks; its p99 is its maximum.
    one = assess(LatencyHistogram.of([0.002] * 15 + [0.055]), [])
    assert one.loop_lag_p99_s > 0.050
    assert not one.saturated
    assert one.loop_lag_max_s > 0.050
    two = assess(LatencyHistogram.of([0.002] * 14 + [0.055, 0.131]), [])
    assert two.saturated
    assert two.reasons == ("event-loop lag p99 131.0 ms > 50 ms (2 of 16 samples)",)


def test_cpu_average_at_bound_saturates_but_one_spike_does_not() -> None:
    assert assess(LatencyHistogram(), [95.0, 92.0, 90.0]).saturated
    assert not assess(LatencyHistogram(), [100.0, 20.0, 20.0]).saturated


def test_custom_bounds() -> None:
    bounds = SaturationBounds(loop_lag_p99_s=0.5, cpu_percent=99.0)
    assert not assess(LatencyHistogram.of([0.2] * 10), [95.0], bounds).saturated


def test_one_saturated_worker_saturates_the_run() -> None:
    calm = (LatencyHistogram.of([0.001] * 10).pack(), [10.0])
    busy = (LatencyHistogram.of([0.001] * 10).pack(), [97.0, 99.0])
    health = merge_health([calm, busy])
    assert health.saturated
    assert health.reasons[0].startswith("worker 1:")


def test_the_merged_lag_maximum_is_exact() -> None:
    # 0.1 s shares a slot of 64 µs: read by its slot it would be 0.100063 s.
    workers = [(LatencyHistogram.of([0.001] * 10 + [0.1]).pack(), [10.0])] * 2
    health = merge_health(workers)
    assert (health.loop_lag_max_s, health.loop_lag_p99_s) == (0.1, 0.1)


def test_the_figures_are_the_worst_workers_as_the_reasons_name_them() -> None:
    # Worker 1 is late in 3 of its 10 samples; merged with 90 calm ones its p99 would read
    # about 60 ms below the 80 ms its reason names, and the CPU average would be diluted.
    calm = [(LatencyHistogram.of([0.001] * 10).pack(), [10.0])] * 9
    late = (LatencyHistogram.of([0.001] * 7 + [0.08] * 3).pack(), [95.0])
    health = merge_health([*calm, late])
    assert health.reasons[0].startswith("worker 9: event-loop lag p99 80.0 ms > 50 ms")
    assert round(health.loop_lag_p99_s, 3) == 0.08
    assert health.cpu_avg_percent == 95.0
    assert (
        health.reasons[1]
        == "worker 9: worker CPU 95 % of a core >= 90 %; add processes or generator machines"
    )
