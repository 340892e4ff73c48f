"""The result of a run: plain, JSON-serialisable data shared by engine, thresholds and reports.

One result object flows one way (engine → scenario → thresholds/checks → report
and store), so everything here is frozen and free of I/O. Every class has
``to_dict()`` / ``from_dict()`` that round-trip exactly through ``json``.

Latency trends keep their whole distribution (an encoded HdrHistogram), so any
percentile can be asked for later and results can be merged exactly. A trend's
``min`` and ``max`` are the exact extremes, which the encoding cannot hold: the
distribution is decoded with them (see :attr:`Trend.histogram`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeAlias, TypeVar

from squall.metrics.histogram import LatencyHistogram, to_us

#: What progress and summaries print when the load generator, not the target, was the limit.
SATURATION_WARNING = "results unreliable: load generator saturated"


class ResultFormatError(ValueError):
    """A dictionary cannot be read as a result object; the message names the field."""


class MetricKind(enum.Enum):
    TREND = "trend"
    COUNTER = "counter"
    RATE = "rate"
    GAUGE = "gauge"


def _field(data: dict[str, Any], key: str, what: str) -> Any:
    try:
        return data[key]
    except KeyError:
        raise ResultFormatError(
            f"{what} dictionary {sorted(data)!r} has no {key!r} field; "
            f"pass a dictionary produced by {what}.to_dict()"
        ) from None


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


#: A trend's statistics, in the order of its fields.
_TREND_STATISTICS = ("min", "max", "mean", "stdev", "p50", "p90", "p95", "p99", "p999")


@dataclass(frozen=True)
class Trend:
    """A distribution of durations in seconds (connect time, response time, ...).

    ``min`` and ``max`` are the exact smallest and largest durations recorded (whole
    µs); percentiles and the mean lie between them. Every statistic is None when nothing
    was recorded (``count`` 0): no samples is not 0 s.
    """

    name: str
    count: int
    min: float | None
    max: float | None
    mean: float | None
    stdev: float | None
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    p999: float | None
    #: base64 of HdrHistogram's compressed encoding (µs resolution, 3 significant digits):
    #: the counts, without the exact extremes (``min`` and ``max`` hold those).
    encoded: str = field(repr=False)

    @classmethod
    def from_histogram(cls, name: str, histogram: LatencyHistogram) -> Trend:
        if not histogram.count:
            return cls(name, 0, encoded=histogram.encode(), **dict.fromkeys(_TREND_STATISTICS))
        return cls(
            name=name,
            count=histogram.count,
            min=histogram.min,
            max=histogram.max,
            mean=histogram.mean,
            stdev=histogram.stdev,
            p50=histogram.percentile(50),
            p90=histogram.percentile(90),
            p95=histogram.percentile(95),
            p99=histogram.percentile(99),
            p999=histogram.percentile(99.9),
            encoded=histogram.encode(),
        )

    @cached_property
    def histogram(self) -> LatencyHistogram:
        """The decoded distribution (decoded once, then cached), ``min`` and ``max`` its
        exact extremes. A trend written before they were exact holds the bounds of their
        slots there, which read as the encoding alone would."""
        extremes = (
            (to_us(self.min), to_us(self.max))
            if self.count and self.min is not None and self.max is not None
            else None
        )
        return LatencyHistogram.decode(self.encoded, extremes)

    def percentile(self, p: float) -> float:
        """The value at percentile ``p`` (0–100), in seconds, from the full distribution
        (0.0 as the empty histogram reads it when ``count`` is 0)."""
        return self.histogram.percentile(p)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": MetricKind.TREND.value,
            "name": self.name,
            "count": self.count,
            "min": self.min,
            "max": self.max,
            "mean": self.mean,
            "stdev": self.stdev,
            "p50": self.p50,
            "p90": self.p90,
            "p95": self.p95,
            "p99": self.p99,
            "p999": self.p999,
            "encoded": self.encoded,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trend:
        count = int(_field(data, "count", "Trend"))
        values = {key: _field(data, key, "Trend") for key in _TREND_STATISTICS}
        # With no samples the statistics are None, whatever was written: an older report
        # has 0 there.
        return cls(
            name=str(_field(data, "name", "Trend")),
            count=count,
            encoded=str(_field(data, "encoded", "Trend")),
            **{key: _optional_float(value) if count else None for key, value in values.items()},
        )


@dataclass(frozen=True)
class Counter:
    """A number of events, and that number per second of run time.

    ``per_second`` is None where a rate would mean nothing: a race scenario's operations
    run in bursts around its setup and checks, so their count over its wall time would
    only be noise (and a baseline comparison would judge it).
    """

    name: str
    count: int
    per_second: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": MetricKind.COUNTER.value,
            "name": self.name,
            "count": self.count,
            "per_second": self.per_second,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Counter:
        return cls(
            name=str(_field(data, "name", "Counter")),
            count=int(_field(data, "count", "Counter")),
            per_second=_optional_float(_field(data, "per_second", "Counter")),
        )


@dataclass(frozen=True)
class Rate:
    """A share of checks that passed, e.g. requests that succeeded.

    ``rate`` is None when nothing was checked (``total`` 0): no samples is not 0 %.
    """

    name: str
    passes: int
    total: int

    @property
    def rate(self) -> float | None:
        return self.passes / self.total if self.total else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": MetricKind.RATE.value,
            "name": self.name,
            "passes": self.passes,
            "total": self.total,
            "rate": self.rate,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rate:
        # ``rate`` is derived, not read: an older report's 0 for no samples reads as None.
        return cls(
            name=str(_field(data, "name", "Rate")),
            passes=int(_field(data, "passes", "Rate")),
            total=int(_field(data, "total", "Rate")),
        )


@dataclass(frozen=True)
class Gauge:
    """A level: the last value set, and the lowest and highest seen."""

    name: str
    value: float
    min: float
    max: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": MetricKind.GAUGE.value,
            "name": self.name,
            "value": self.value,
            "min": self.min,
            "max": self.max,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Gauge:
        return cls(
            name=str(_field(data, "name", "Gauge")),
            value=float(_field(data, "value", "Gauge")),
            min=float(_field(data, "min", "Gauge")),
            max=float(_field(data, "max", "Gauge")),
        )


Metric: TypeAlias = Trend | Counter | Rate | Gauge
_M = TypeVar("_M", Trend, Counter, Rate, Gauge)

_METRIC_TYPES: dict[str, type[Trend] | type[Counter] | type[Rate] | type[Gauge]] = {
    MetricKind.TREND.value: Trend,
    MetricKind.COUNTER.value: Counter,
    MetricKind.RATE.value: Rate,
    MetricKind.GAUGE.value: Gauge,
}


def metric_from_dict(data: dict[str, Any]) -> Metric:
    """Read any metric written by its ``to_dict()`` (the ``type`` field says which)."""
    kind = data.get("type")
    cls = _METRIC_TYPES.get(str(kind))
    if cls is None:
        raise ResultFormatError(
            f"metric dictionary has type {kind!r}; expected one of {sorted(_METRIC_TYPES)}"
        )
    return cls.from_dict(data)


@dataclass(frozen=True)
class SeriesPoint:
    """One second of a run, summed over all worker processes."""

    #: Seconds since the run started (the point covers [t, t + 1)).
    t: int
    users: int
    sent_per_s: float
    received_per_s: float
    #: Percentiles of ``response_time`` (or ``round_trip`` if a scenario records no
    #: response times) completed in this second; None when nothing completed (older
    #: reports hold 0.0 there).
    p50: float | None
    p99: float | None
    errors: int
    #: Connections open at the end of the second, and the most open at once within it
    #: (with several workers, the sum of each one's own peak: an upper bound when sockets
    #: churn). None in reports of a squall that did not record them.
    connections: int | None = None
    connections_peak: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "t": self.t,
            "users": self.users,
            "sent_per_s": self.sent_per_s,
            "received_per_s": self.received_per_s,
            "p50": self.p50,
            "p99": self.p99,
            "errors": self.errors,
            "connections": self.connections,
            "connections_peak": self.connections_peak,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SeriesPoint:
        what = "SeriesPoint"
        return cls(
            t=int(_field(data, "t", what)),
            users=int(_field(data, "users", what)),
            sent_per_s=float(_field(data, "sent_per_s", what)),
            received_per_s=float(_field(data, "received_per_s", what)),
            p50=_optional_float(_field(data, "p50", what)),
            p99=_optional_float(_field(data, "p99", what)),
            errors=int(_field(data, "errors", what)),
            connections=_optional_int(data.get("connections")),
            connections_peak=_optional_int(data.get("connections_peak")),
        )


@dataclass(frozen=True)
class ErrorSummary:
    """How often one kind of error happened, with a few sample messages."""

    kind: str
    count: int
    samples: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "count": self.count, "samples": list(self.samples)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ErrorSummary:
        return cls(
            kind=str(_field(data, "kind", "ErrorSummary")),
            count=int(_field(data, "count", "ErrorSummary")),
            samples=tuple(str(s) for s in data.get("samples", ())),
        )


def error_summaries_of(result: Mapping[str, Any] | None) -> list[ErrorSummary]:
    """The ``errors`` of a load scenario's result as report.json holds it (``{"kind",
    "count", "samples"}`` each), read leniently for display: an entry without a string
    ``kind`` is skipped, a missing count reads 0 and missing samples none."""
    entries = (result or {}).get("errors")
    if not isinstance(entries, list):
        return []
    found = []
    for entry in entries:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("kind"), str):
            continue
        count, samples = entry.get("count"), entry.get("samples")
        found.append(
            ErrorSummary(
                entry["kind"],
                count if isinstance(count, int) else 0,
                tuple(map(str, samples)) if isinstance(samples, list | tuple) else (),
            )
        )
    return found


@dataclass(frozen=True)
class GeneratorHealth:
    """Whether the load generator itself kept up; if not, latencies are its fault."""

    saturated: bool
    reasons: tuple[str, ...] = ()
    loop_lag_p99_s: float = 0.0
    loop_lag_max_s: float = 0.0
    cpu_avg_percent: float = 0.0
    cpu_max_percent: float = 0.0

    @property
    def warning(self) -> str | None:
        """The prominent line to print when saturated, else None."""
        if not self.saturated:
            return None
        return f"{SATURATION_WARNING} ({'; '.join(self.reasons)})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "saturated": self.saturated,
            "reasons": list(self.reasons),
            "loop_lag_p99_s": self.loop_lag_p99_s,
            "loop_lag_max_s": self.loop_lag_max_s,
            "cpu_avg_percent": self.cpu_avg_percent,
            "cpu_max_percent": self.cpu_max_percent,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneratorHealth:
        return cls(
            saturated=bool(_field(data, "saturated", "GeneratorHealth")),
            reasons=tuple(str(r) for r in data.get("reasons", ())),
            loop_lag_p99_s=float(data.get("loop_lag_p99_s", 0.0)),
            loop_lag_max_s=float(data.get("loop_lag_max_s", 0.0)),
            cpu_avg_percent=float(data.get("cpu_avg_percent", 0.0)),
            cpu_max_percent=float(data.get("cpu_max_percent", 0.0)),
        )


@dataclass(frozen=True)
class RunResult:
    """Everything a run measured. Plain data: thresholds, reports and the store read it."""

    scenario: str
    params: dict[str, Any]
    #: The workload as plain data (see ``squall.engine.workload``'s ``describe()``).
    workload: dict[str, Any]
    #: Wall-clock start and end (seconds since the epoch).
    started_at: float
    ended_at: float
    duration_s: float
    processes: int
    metrics: dict[str, Metric]
    series: tuple[SeriesPoint, ...] = ()
    errors: tuple[ErrorSummary, ...] = ()
    generator: GeneratorHealth = field(default_factory=lambda: GeneratorHealth(saturated=False))
    interrupted: bool = False
    #: Why the run stopped early ("sigint", "deadline", ...), or None.
    interrupted_reason: str | None = None

    def metric(self, name: str) -> Metric:
        try:
            return self.metrics[name]
        except KeyError:
            raise KeyError(
                f"run {self.scenario!r} recorded no metric {name!r}; it has {sorted(self.metrics)}"
            ) from None

    def trend(self, name: str) -> Trend:
        return self._typed(name, Trend)

    def counter(self, name: str) -> Counter:
        return self._typed(name, Counter)

    def rate(self, name: str) -> Rate:
        return self._typed(name, Rate)

    def gauge(self, name: str) -> Gauge:
        return self._typed(name, Gauge)

    def count(self, name: str) -> int:
        """A counter's count, 0 if the counter was never incremented."""
        found = self.metrics.get(name)
        return found.count if isinstance(found, Counter) else 0

    def _typed(self, name: str, cls: type[_M]) -> _M:
        found = self.metric(name)
        if not isinstance(found, cls):
            raise TypeError(f"metric {name!r} is a {type(found).__name__}, not a {cls.__name__}")
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "params": dict(self.params),
            "workload": dict(self.workload),
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration_s": self.duration_s,
            "processes": self.processes,
            "metrics": {name: metric.to_dict() for name, metric in sorted(self.metrics.items())},
            "series": [point.to_dict() for point in self.series],
            "errors": [error.to_dict() for error in self.errors],
            "generator": self.generator.to_dict(),
            "interrupted": self.interrupted,
            "interrupted_reason": self.interrupted_reason,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        what = "RunResult"
        metrics = _field(data, "metrics", what)
        return cls(
            scenario=str(_field(data, "scenario", what)),
            params=dict(data.get("params", {})),
            workload=dict(data.get("workload", {})),
            started_at=float(_field(data, "started_at", what)),
            ended_at=float(_field(data, "ended_at", what)),
            duration_s=float(_field(data, "duration_s", what)),
            processes=int(_field(data, "processes", what)),
            metrics={name: metric_from_dict(m) for name, m in metrics.items()},
            series=tuple(SeriesPoint.from_dict(p) for p in data.get("series", ())),
            errors=tuple(ErrorSummary.from_dict(e) for e in data.get("errors", ())),
            generator=GeneratorHealth.from_dict(data.get("generator", {"saturated": False})),
            interrupted=bool(data.get("interrupted", False)),
            interrupted_reason=data.get("interrupted_reason"),
        )
