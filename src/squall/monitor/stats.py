"""Resource samples and what they add up to: start/peak/end memory, CPU, leak slope.

Pure: no psutil, no clock, no event loop. The sampler feeds
:class:`BoundedSeries` one :class:`ResourceSample` per tick; tests feed it
hand-made series (flat, linear growth, noise).

The leak estimate is a least-squares line through RSS over time. Its slope is
reported in MB per minute with the standard error and a 95 % confidence
interval (Student's t), and ``r_squared`` says how much of the variation the
line explains. A run is flagged as a *probable leak* when the whole interval
lies above zero **and** the slope is at least ``min_leak_mb_per_min``: a
statistically certain 0.01 MB/min is a cache warming up, not a leak.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

#: Below this slope a significant growth is still not called a leak.
MIN_LEAK_MB_PER_MIN = 1.0
#: ... and the fitted line must add at least this much over the samples' span,
MIN_LEAK_GROWTH_MB = 5.0
#: ... which must be at least this long: a shorter run is mostly start-up.
MIN_LEAK_WINDOW_MIN = 0.5
#: A sample covering less time than this is left out of the CPU peak (see Totals.add).
MIN_PEAK_WINDOW_S = 0.05
#: Fewer points than this give no leak estimate at all.
MIN_FIT_SAMPLES = 3

# Two-sided 97.5 % quantiles of Student's t by degrees of freedom.
_T975 = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
    9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131,
    16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086, 21: 2.080, 22: 2.074,
    23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048, 29: 2.045,
    30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980,
}  # fmt: skip


def t_critical(df: int) -> float:
    """The 97.5 % quantile of Student's t with ``df`` degrees of freedom (conservative)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    # Between tabulated values take the next smaller df: a slightly wider interval.
    return _T975[max(bound for bound in _T975 if bound <= df)]


@dataclass(frozen=True)
class ResourceSample:
    """One tick for one process group; CPU is in % of one core, summed over processes."""

    t: float
    rss_mb: float
    cpu_percent: float
    threads: int
    open_files: int
    sockets: int
    processes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResourceSample:
        return cls(
            t=float(data["t"]),
            rss_mb=float(data["rss_mb"]),
            cpu_percent=float(data["cpu_percent"]),
            threads=int(data["threads"]),
            open_files=int(data["open_files"]),
            sockets=int(data["sockets"]),
            processes=int(data["processes"]),
        )


@dataclass(frozen=True)
class LinearFit:
    """``y = intercept + slope * x`` with the slope's standard error and r²."""

    slope: float
    intercept: float
    stderr: float
    r_squared: float
    n: int


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> LinearFit:
    """Ordinary least squares; needs at least two distinct ``xs``."""
    n = len(xs)
    if n != len(ys) or n < 2:
        raise ValueError(f"linear_fit needs two equally long series of >= 2 points, got {n}")
    mean_x = sum(xs) / n
    mean_y = sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError("linear_fit needs at least two distinct x values")
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    syy = sum((y - mean_y) ** 2 for y in ys)
    slope = sxy / sxx
    intercept = mean_y - slope * mean_x
    residual = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys, strict=True))
    r_squared = 1.0 - residual / syy if syy > 0 else 1.0
    stderr = math.sqrt(residual / (n - 2) / sxx) if n > 2 else math.inf
    return LinearFit(slope, intercept, stderr, max(0.0, r_squared), n)


@dataclass(frozen=True)
class LeakEstimate:
    """RSS growth per minute by a least-squares line, with its confidence."""

    slope_mb_per_min: float
    stderr_mb_per_min: float
    ci95_low: float
    ci95_high: float
    r_squared: float
    samples: int
    probable_leak: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LeakEstimate:
        return cls(
            slope_mb_per_min=float(data["slope_mb_per_min"]),
            stderr_mb_per_min=float(data["stderr_mb_per_min"]),
            ci95_low=float(data["ci95_low"]),
            ci95_high=float(data["ci95_high"]),
            r_squared=float(data["r_squared"]),
            samples=int(data["samples"]),
            probable_leak=bool(data["probable_leak"]),
        )


def leak_estimate(
    samples: Sequence[ResourceSample], *, min_leak_mb_per_min: float = MIN_LEAK_MB_PER_MIN
) -> LeakEstimate | None:
    """The leak slope of ``samples``, or ``None`` with too few points or no elapsed time."""
    if len(samples) < MIN_FIT_SAMPLES:
        return None
    minutes = [s.t / 60.0 for s in samples]
    if max(minutes) == min(minutes):
        return None
    fit = linear_fit(minutes, [s.rss_mb for s in samples])
    half = t_critical(fit.n - 2) * fit.stderr  # n >= 3, so the error is finite
    low, high = fit.slope - half, fit.slope + half
    return LeakEstimate(
        slope_mb_per_min=fit.slope,
        stderr_mb_per_min=fit.stderr,
        ci95_low=low,
        ci95_high=high,
        r_squared=fit.r_squared,
        samples=fit.n,
        # A short run's warm-up (caches, pools) fits a steep line over a few MB;
        # a leak also has to add up to real memory over the window watched.
        probable_leak=low > 0
        and fit.slope >= min_leak_mb_per_min
        and fit.slope * (max(minutes) - min(minutes)) >= MIN_LEAK_GROWTH_MB
        and max(minutes) - min(minutes) >= MIN_LEAK_WINDOW_MIN,
    )


@dataclass
class Totals:
    """Exact running aggregates, kept even when the series itself is thinned out."""

    count: int = 0
    first: ResourceSample | None = None
    last: ResourceSample | None = None
    #: The first and the latest sample that found a process of the group: memory figures
    #: start and end there (a sample of no process reads 0 MB: "not there", not "freed").
    first_found: ResourceSample | None = None
    last_found: ResourceSample | None = None
    peak_rss_mb: float = 0.0
    #: CPU % weighted by the time each sample covers (since the sample before it).
    cpu_weighted: float = 0.0
    cpu_seconds_covered: float = 0.0
    peak_cpu_percent: float = 0.0
    peak_threads: int = 0
    peak_open_files: int = 0
    peak_sockets: int = 0
    peak_processes: int = 0

    def add(self, sample: ResourceSample) -> None:
        previous = self.last
        if self.first is None:
            self.first = sample
        self.last = sample
        self.count += 1
        if sample.processes > 0:
            if self.first_found is None:
                self.first_found = sample
            self.last_found = sample
        if previous is not None and sample.t > previous.t:
            # A sample's CPU % covers the time since the one before: weigh it by that
            # time, and keep very short windows (the last sample, taken at stop) out of
            # the peak, where 10 ms of CPU-time granularity reads as hundreds of %.
            covered = sample.t - previous.t
            self.cpu_weighted += sample.cpu_percent * covered
            self.cpu_seconds_covered += covered
            if covered >= MIN_PEAK_WINDOW_S:
                self.peak_cpu_percent = max(self.peak_cpu_percent, sample.cpu_percent)
        self.peak_rss_mb = max(self.peak_rss_mb, sample.rss_mb)
        self.peak_threads = max(self.peak_threads, sample.threads)
        self.peak_open_files = max(self.peak_open_files, sample.open_files)
        self.peak_sockets = max(self.peak_sockets, sample.sockets)
        self.peak_processes = max(self.peak_processes, sample.processes)


@dataclass(frozen=True)
class GroupStats:
    """What a process group did over the run. Memory in MB, CPU in % of one core."""

    samples: int
    duration_s: float
    start_mb: float
    peak_mb: float
    end_mb: float
    growth_mb: float
    cpu_avg_percent: float
    cpu_peak_percent: float
    peak_threads: int
    peak_open_files: int
    peak_sockets: int
    peak_processes: int
    leak: LeakEstimate | None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["leak"] = None if self.leak is None else self.leak.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GroupStats:
        leak = data["leak"]
        return cls(
            samples=int(data["samples"]),
            duration_s=float(data["duration_s"]),
            start_mb=float(data["start_mb"]),
            peak_mb=float(data["peak_mb"]),
            end_mb=float(data["end_mb"]),
            growth_mb=float(data["growth_mb"]),
            cpu_avg_percent=float(data["cpu_avg_percent"]),
            cpu_peak_percent=float(data["cpu_peak_percent"]),
            peak_threads=int(data["peak_threads"]),
            peak_open_files=int(data["peak_open_files"]),
            peak_sockets=int(data["peak_sockets"]),
            peak_processes=int(data["peak_processes"]),
            leak=None if leak is None else LeakEstimate.from_dict(leak),
        )


def summarize(
    samples: Iterable[ResourceSample],
    *,
    totals: Totals | None = None,
    min_leak_mb_per_min: float = MIN_LEAK_MB_PER_MIN,
) -> GroupStats:
    """Stats of a series; ``totals`` (exact, from every sample) win over the kept series."""
    series = list(samples)
    if totals is None:
        totals = Totals()
        for sample in series:
            totals.add(sample)
    first, last = totals.first, totals.last
    if first is None or last is None:
        return GroupStats(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0, 0, 0, None)
    # A process group that exits mid-run (or is found only after the first sample) must
    # not read as freeing all its memory, or as growing from nothing.
    start = totals.first_found or first
    end = totals.last_found or last
    return GroupStats(
        samples=totals.count,
        duration_s=last.t - first.t,
        start_mb=start.rss_mb,
        peak_mb=totals.peak_rss_mb,
        end_mb=end.rss_mb,
        growth_mb=end.rss_mb - start.rss_mb,
        cpu_avg_percent=(
            totals.cpu_weighted / totals.cpu_seconds_covered if totals.cpu_seconds_covered else 0.0
        ),
        cpu_peak_percent=totals.peak_cpu_percent,
        peak_threads=totals.peak_threads,
        peak_open_files=totals.peak_open_files,
        peak_sockets=totals.peak_sockets,
        peak_processes=totals.peak_processes,
        leak=leak_estimate(
            [s for s in series if s.processes > 0], min_leak_mb_per_min=min_leak_mb_per_min
        ),
    )


@dataclass
class BoundedSeries:
    """A time series that never holds more than ``capacity`` samples.

    When full it drops every other sample and from then on keeps one sample in
    ``stride`` (doubling each time), so a long run keeps an evenly spaced
    picture of its whole length in bounded memory. The first and the latest
    samples, peaks and averages stay exact (see :class:`Totals`).
    """

    capacity: int = 3600
    stride: int = 1
    samples: list[ResourceSample] = field(default_factory=list)
    totals: Totals = field(default_factory=Totals)
    _seen: int = 0

    def __post_init__(self) -> None:
        if self.capacity < 4:
            raise ValueError(f"BoundedSeries capacity must be >= 4, got {self.capacity}")

    def add(self, sample: ResourceSample) -> None:
        self.totals.add(sample)
        keep = self._seen % self.stride == 0
        self._seen += 1
        if not keep:
            return
        if len(self.samples) >= self.capacity:
            self.samples = self.samples[::2]
            self.stride *= 2
            self._seen = 1
        self.samples.append(sample)

    def kept(self) -> list[ResourceSample]:
        """The kept samples, ending with the latest one even if the stride skipped it."""
        last = self.totals.last
        if last is not None and (not self.samples or self.samples[-1] is not last):
            return [*self.samples, last]
        return list(self.samples)

    def stats(self, *, min_leak_mb_per_min: float = MIN_LEAK_MB_PER_MIN) -> GroupStats:
        return summarize(self.kept(), totals=self.totals, min_leak_mb_per_min=min_leak_mb_per_min)
