"""Is the load generator itself the bottleneck? Pure rules over loop-lag and CPU samples.

A generator whose event loop is late, or whose process uses a whole core, delays
its own sends and reads: the latencies it reports then describe the generator,
not the target. Each worker samples its loop lag and CPU; these functions turn
the samples into a :class:`~squall.metrics.result.GeneratorHealth` verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from squall.metrics.histogram import LatencyHistogram, PackedHistogram
from squall.metrics.result import GeneratorHealth


@dataclass(frozen=True)
class SaturationBounds:
    """Limits beyond which a worker counts as saturated."""

    #: 99th percentile of event-loop lag, seconds.
    loop_lag_p99_s: float = 0.050
    #: Average CPU of one worker process, percent of one core.
    cpu_percent: float = 90.0
    #: Lag samples that must exceed ``loop_lag_p99_s``: one stall (a collection, the
    #: connection burst of a sub-second scenario) is not saturation. In a run of 100
    #: samples (5 s) or more a p99 above the bound already means two or more.
    loop_lag_stalls: int = 2


def assess(
    loop_lag: LatencyHistogram,
    cpu_samples: Sequence[float],
    bounds: SaturationBounds = SaturationBounds(),
) -> GeneratorHealth:
    """The verdict for one or more workers' merged lag histogram and CPU samples.

    ``cpu_samples`` are per-worker, per-second CPU percentages (of one core).
    The CPU rule uses the average over the run so that one busy second during
    start-up does not condemn a run; likewise the lag rule needs
    ``bounds.loop_lag_stalls`` samples over the bound, so that one stall does not.
    """
    reasons: list[str] = []
    lag_p99 = loop_lag.percentile(99)
    if loop_lag.count and lag_p99 > bounds.loop_lag_p99_s:
        stalls = loop_lag.count_above(bounds.loop_lag_p99_s)
        if stalls >= bounds.loop_lag_stalls:
            reasons.append(
                f"event-loop lag p99 {lag_p99 * 1000:.1f} ms > "
                f"{bounds.loop_lag_p99_s * 1000:.0f} ms ({stalls} of {loop_lag.count} samples)"
            )
    cpu_avg = sum(cpu_samples) / len(cpu_samples) if cpu_samples else 0.0
    cpu_max = max(cpu_samples, default=0.0)
    if cpu_samples and cpu_avg >= bounds.cpu_percent:
        reasons.append(
            f"worker CPU {cpu_avg:.0f} % of a core >= {bounds.cpu_percent:.0f} %; "
            "add processes or generator machines"
        )
    return GeneratorHealth(
        saturated=bool(reasons),
        reasons=tuple(reasons),
        loop_lag_p99_s=lag_p99,
        loop_lag_max_s=loop_lag.max,
        cpu_avg_percent=cpu_avg,
        cpu_max_percent=cpu_max,
    )


def merge_health(
    workers: Sequence[tuple[PackedHistogram, Sequence[float]]],
    bounds: SaturationBounds = SaturationBounds(),
) -> GeneratorHealth:
    """Assess several workers, given each one's packed lag histogram and CPU samples.

    Saturated if any worker is: a single overloaded worker delays its share of users. The
    figures are the worst worker's, as the reasons name them (a p99 of the merged lag would
    hide one late worker among calm ones).
    """
    reasons: list[str] = []
    verdicts: list[GeneratorHealth] = []
    for index, (packed, cpu) in enumerate(workers):
        verdict = assess(packed.unpack(), cpu, bounds)
        verdicts.append(verdict)
        reasons.extend(f"worker {index}: {reason}" for reason in verdict.reasons)
    return GeneratorHealth(
        saturated=bool(reasons),
        reasons=tuple(reasons),
        loop_lag_p99_s=max((v.loop_lag_p99_s for v in verdicts), default=0.0),
        loop_lag_max_s=max((v.loop_lag_max_s for v in verdicts), default=0.0),
        cpu_avg_percent=max((v.cpu_avg_percent for v in verdicts), default=0.0),
        cpu_max_percent=max((v.cpu_max_percent for v in verdicts), default=0.0),
    )
