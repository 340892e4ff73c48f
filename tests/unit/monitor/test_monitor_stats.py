"""Monitor statistics on hand-made series: flat, linear growth, noise, thinning."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from squall.monitor.report import GroupReport, MonitorReport
from squall.monitor.stats import (
    BoundedSeries,
    GroupStats,
    ResourceSample,
    leak_estimate,
    linear_fit,
    summarize,
    t_critical,
)
from squall.suite import generator_leak_note, memory_note


def series(
    rss: list[float], cpu: list[float] | None = None, step: float = 1.0
) -> list[ResourceSample]:
    cpu = cpu or [0.0] * len(rss)
    return [
        ResourceSample(
            t=i * step,
            rss_mb=r,
            cpu_percent=c,
            threads=4 + i,
            open_files=10,
            sockets=i,
            processes=2,
        )
        for i, (r, c) in enumerate(zip(rss, cpu, strict=True))
    ]


def test_linear_fit_exact_line() -> None:
    fit = linear_fit([0, 1, 2, 3], [1, 3, 5, 7])
    assert (fit.slope, fit.intercept, fit.stderr, fit.r_squared) == (2.0, 1.0, 0.0, 1.0)


def test_linear_fit_rejects_degenerate_input() -> None:
    with pytest.raises(ValueError, match=">= 2 points"):
        linear_fit([1.0], [1.0])
    with pytest.raises(ValueError, match="distinct x"):
        linear_fit([1.0, 1.0], [1.0, 2.0])


def test_t_critical_is_conservative_between_table_entries() -> None:
    assert t_critical(1) == 12.706
    assert t_critical(35) == t_critical(30) == 2.042
    assert t_critical(10_000) == 1.980
    with pytest.raises(ValueError, match="degrees of freedom"):
        t_critical(0)


def test_start_peak_end_growth_and_cpu() -> None:
    stats = summarize(series([100, 180, 250, 150], cpu=[10, 50, 90, 30]))
    assert (stats.start_mb, stats.peak_mb, stats.end_mb, stats.growth_mb) == (100, 250, 150, 50)
    # A sample's CPU covers the second before it; the first sample covers nothing.
    assert stats.cpu_avg_percent == pytest.approx((50 + 90 + 30) / 3)
    assert stats.cpu_peak_percent == 90.0
    assert (stats.samples, stats.duration_s) == (4, 3.0)
    assert (stats.peak_threads, stats.peak_sockets, stats.peak_processes) == (7, 3, 2)


def test_cpu_average_is_weighted_by_time_and_short_windows_do_not_make_peaks() -> None:
    samples = series([100, 100, 100], cpu=[0, 50, 50])
    # A last sample 10 ms after the one before (taken at stop) reads 400 % from one
    # 10 ms CPU-time tick: it weighs 10 ms in the average and is no peak.
    last = samples[-1]
    samples.append(ResourceSample(last.t + 0.01, 100, 400.0, 4, 10, 0, 2))
    stats = summarize(samples)
    assert stats.cpu_peak_percent == 50.0
    assert stats.cpu_avg_percent == pytest.approx((50 * 2 + 400 * 0.01) / 2.01)


def test_empty_series() -> None:
    stats = summarize([])
    assert stats.samples == 0
    assert stats.leak is None


def test_flat_series_is_no_leak() -> None:
    leak = leak_estimate(series([200.0] * 60))
    assert leak is not None
    assert leak.slope_mb_per_min == 0.0
    assert not leak.probable_leak


def test_linear_growth_is_a_leak_with_the_right_slope() -> None:
    # 0.5 MB per second for a minute = 30 MB/min.
    leak = leak_estimate(series([100 + 0.5 * i for i in range(60)]))
    assert leak is not None
    assert leak.slope_mb_per_min == pytest.approx(30.0)
    assert leak.r_squared == pytest.approx(1.0)
    assert leak.probable_leak


def test_noise_without_trend_is_no_leak() -> None:
    rng = random.Random(7)
    leak = leak_estimate(series([300 + rng.gauss(0, 20) for _ in range(120)]))
    assert leak is not None
    assert leak.ci95_low < 0 < leak.ci95_high
    assert leak.r_squared < 0.2
    assert not leak.probable_leak


def test_noisy_growth_is_a_leak_with_a_wider_interval() -> None:
    rng = random.Random(3)
    leak = leak_estimate(series([100 + 0.2 * i + rng.gauss(0, 3) for i in range(300)]))
    assert leak is not None
    assert leak.slope_mb_per_min == pytest.approx(12.0, rel=0.1)
    assert 0 < leak.ci95_low < 12.0 < leak.ci95_high
    assert leak.stderr_mb_per_min > 0
    assert leak.probable_leak


def test_tiny_significant_growth_is_not_called_a_leak() -> None:
    leak = leak_estimate(series([100 + 0.001 * i for i in range(60)]))
    assert leak is not None
    assert leak.ci95_low > 0
    assert not leak.probable_leak  # 0.06 MB/min is below MIN_LEAK_MB_PER_MIN
    assert leak_estimate(series([100 + 0.001 * i for i in range(60)]), min_leak_mb_per_min=0.01)


def test_too_few_points_or_no_elapsed_time_give_no_estimate() -> None:
    assert leak_estimate(series([1.0, 2.0])) is None
    assert leak_estimate(series([1.0, 2.0, 3.0], step=0.0)) is None


def test_bounded_series_thins_out_but_keeps_exact_stats() -> None:
    bounded = BoundedSeries(capacity=8)
    samples = series([float(i % 7 == 3) * 1000 + i for i in range(100)], cpu=[1.0] * 100)
    for sample in samples:
        bounded.add(sample)
    kept = bounded.kept()
    assert len(kept) <= 9
    assert kept[0] == samples[0]
    assert kept[-1] == samples[-1]
    assert bounded.stride == 16
    gaps = {round(b.t - a.t) for a, b in itertools.pairwise(kept[:-1])}
    assert gaps == {16}
    exact = summarize(samples)
    stats = bounded.stats()
    assert (stats.samples, stats.peak_mb, stats.cpu_avg_percent) == (100, exact.peak_mb, 1.0)
    assert (stats.start_mb, stats.end_mb) == (exact.start_mb, exact.end_mb)
    with pytest.raises(ValueError, match="capacity must be >= 4"):
        BoundedSeries(capacity=2)


def test_report_round_trip_and_gauges() -> None:
    samples = series([100 + i for i in range(10)], cpu=[20.0] * 10)
    group = GroupReport("target", summarize(samples), tuple(samples), (10, 11), 1, 2)
    report = MonitorReport(0.1, 2, {"target": group})
    assert MonitorReport.from_dict(report.to_dict()) == report
    # CPU as thresholds judge it: 20 % of one core is 10 % of this 2-core machine.
    assert report.gauges() == {"memory_growth_mb": 9.0, "cpu_avg_percent": 10.0}
    assert report.gauges("postgres") == {}
    assert GroupStats.from_dict(summarize([]).to_dict()) == summarize([])
    assert math.isfinite(report.groups["target"].stats.leak.slope_mb_per_min)  # type: ignore[union-attr]


def test_a_group_whose_processes_were_never_found_has_no_gauges() -> None:
    # A PID that does not exist or a port nothing listens on: samples of zero processes.
    empty = [
        ResourceSample(t=float(i), rss_mb=0.0, cpu_percent=0.0, threads=0, open_files=0,
                       sockets=0, processes=0)
        for i in range(5)
    ]  # fmt: skip
    group = GroupReport("target", summarize(empty), tuple(empty))
    report = MonitorReport(1.0, 2, {"target": group})
    assert not group.measured
    assert report.gauges() == {}  # its thresholds: not applicable, not passed on zeros
    note = memory_note(report)
    assert note is not None
    assert note.startswith("target: no process found in any of 5 monitor samples")
    assert "monitor.pids or monitor.ports" in note


def test_a_target_given_to_the_monitor_by_nothing_gets_a_note_naming_the_settings() -> None:
    # An external target without monitor.pids or monitor.ports: there is no target group.
    generator = GroupReport("generator", summarize(series([100.0] * 5)), ())
    report = MonitorReport(1.0, 2, {"generator": generator})
    assert report.gauges() == {}  # its thresholds: not applicable
    note = memory_note(report)
    assert note is not None
    assert note.startswith("target: not monitored")
    assert "monitor.pids or monitor.ports" in note


def test_short_warm_up_growth_is_not_called_a_leak() -> None:
    # 10 s of steady warm-up: a steep slope (2.4 MB/min) but only 0.36 MB in all.
    leak = leak_estimate(series([190 + 0.04 * i for i in range(10)]))
    assert leak is not None
    assert leak.ci95_low > 0
    assert leak.slope_mb_per_min > 2
    assert not leak.probable_leak
    # 8 MB in the first 6 s (sockets connecting) is start-up, not a leak, however steep.
    burst = leak_estimate(series([190 + 1.6 * i for i in range(6)]))
    assert burst is not None
    assert burst.ci95_low > 0
    assert not burst.probable_leak
    # The same slope kept up for five minutes adds 12 MB: that is a leak.
    sustained = leak_estimate(series([190 + 0.04 * i for i in range(300)]))
    assert sustained is not None
    assert sustained.probable_leak


def gone(samples: list[ResourceSample], indexes: range) -> list[ResourceSample]:
    """``samples`` where those at ``indexes`` found no process: 0 MB, as the sampler records."""
    return [
        ResourceSample(s.t, 0.0, 0.0, 0, 0, 0, 0) if i in indexes else s
        for i, s in enumerate(samples)
    ]


def test_a_group_that_exits_mid_run_does_not_read_as_freeing_its_memory() -> None:
    # 300 MB growing 1 MB a sample, then the target is gone for the last three samples.
    samples = gone(series([300.0 + i for i in range(10)]), range(7, 10))
    stats = summarize(samples)
    assert (stats.start_mb, stats.end_mb, stats.growth_mb) == (300.0, 306.0, 6.0)
    assert stats.peak_mb == 306.0
    assert stats.duration_s == 9.0
    assert stats.leak is not None
    assert stats.leak.samples == 7
    assert stats.leak.slope_mb_per_min == pytest.approx(60.0)
    group = GroupReport("target", stats, tuple(samples))
    report = MonitorReport(1.0, 2, {"target": group})
    assert report.gauges()["memory_growth_mb"] == 6.0  # not -300: a threshold still judges
    note = memory_note(report)
    assert note is not None
    assert "306.0 MB end (+6.0 MB), at its last sample with a process: none of it was" in note


def test_a_group_found_after_the_first_sample_does_not_grow_from_nothing() -> None:
    samples = gone(series([250.0] * 6), range(2))
    stats = summarize(samples)
    assert (stats.start_mb, stats.end_mb, stats.growth_mb) == (250.0, 250.0, 0.0)
    assert stats.leak is not None
    assert stats.leak.slope_mb_per_min == 0.0
    thinned = BoundedSeries(capacity=4)
    for sample in samples:
        thinned.add(sample)
    assert thinned.stats().growth_mb == 0.0
    note = memory_note(
        MonitorReport(1.0, 2, {"target": GroupReport("target", stats, tuple(samples))})
    )
    assert note is not None
    assert "none of it was left" not in note


def test_squall_growing_like_a_leak_is_said_in_the_notes() -> None:
    # An 8-minute soak's generator grew 32 MB/min: report.json's monitor said
    # probable_leak, and the terminal, the notes and junit.xml said nothing.
    growing = GroupReport("generator", summarize(series([80 + 0.5 * i for i in range(60)])), ())
    steady = GroupReport("generator", summarize(series([80.0] * 60)), ())
    note = generator_leak_note(MonitorReport(1.0, 2, {"generator": growing}))
    assert note is not None
    assert note.startswith("squall's own generator memory: 80.0 MB start")
    assert "probable leak" in note
    assert generator_leak_note(MonitorReport(1.0, 2, {"generator": steady})) is None
    assert generator_leak_note(MonitorReport(1.0, 2, {})) is None
