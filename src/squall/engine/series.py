"""Per-second snapshots from workers, summed into the run's time series (pure).

Each worker sends one :class:`Snapshot` per second of run time (and a last,
partial one when it stops). Seconds are counted from the common start time the
parent hands to every worker, so snapshot *t* of every worker covers the same
second. Latencies travel as packed histograms (the encoded counts and the exact
extremes) and are added, never averaged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from squall.engine.saturation import merge_health
from squall.metrics.histogram import LatencyHistogram, PackedHistogram
from squall.metrics.result import SATURATION_WARNING, SeriesPoint


@dataclass(frozen=True)
class Snapshot:
    """One worker's second."""

    worker: int
    t: int
    #: Seconds this snapshot covers (1.0, or less for a worker's last one).
    span: float
    #: The most users running at once in this second (so one that came and went between two
    #: snapshots counts).
    users: int
    #: Connections open at the end of the second, and the most open at once within it
    #: (so a socket opened and closed between two snapshots counts).
    connections: int
    connections_peak: int
    sent: int
    received: int
    errors: int
    #: Latencies completed in this second, None if there were none.
    latency: PackedHistogram | None
    #: Worker CPU in this second, percent of one core (None for the first second).
    cpu: float | None
    #: Histogram of the worker's event-loop lag so far.
    lag: PackedHistogram
    final: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Snapshot:
        latency = data["latency"]
        return cls(
            **{
                **data,
                "latency": None if latency is None else PackedHistogram.from_dict(latency),
                "lag": PackedHistogram.from_dict(data["lag"]),
            }
        )


@dataclass(frozen=True)
class ProgressView:
    """What live progress shows after each second."""

    elapsed_s: float
    remaining_s: float | None
    users: int
    #: Open at the end of the second; the most open at once within it (with several
    #: workers, the sum of each one's own peak: an upper bound when sockets churn).
    connections: int
    connections_peak: int
    sent_per_s: float
    received_per_s: float
    #: Percentiles of the run so far; None until a latency was recorded.
    p50: float | None
    p99: float | None
    errors: int
    warning: str | None


@dataclass
class _Second:
    workers: set[int] = field(default_factory=set)
    span: float = 0.0
    users: int = 0
    connections: int = 0
    connections_peak: int = 0
    sent: int = 0
    received: int = 0
    errors: int = 0
    #: The second's latencies, until it is reported; then only its percentiles are kept (a
    #: histogram is 188 KB: kept for every second, a long run's parent grew by that much a
    #: second).
    latency: LatencyHistogram | None = None
    p50: float | None = None
    p99: float | None = None

    def freeze(self) -> None:
        """Keep the second's percentiles and drop its histogram (every worker that will
        send the second has sent it)."""
        self.p50, self.p99 = self.percentiles()
        self.latency = None

    def percentiles(self) -> tuple[float | None, float | None]:
        latency = self.latency
        if latency is None or not latency.count:
            return self.p50, self.p99
        return latency.percentile(50), latency.percentile(99)


class SeriesAggregator:
    """Sums snapshots by second; reports a second once every live worker has sent it."""

    def __init__(self, workers: int, planned_s: float | None = None) -> None:
        self._workers = workers
        self._planned_s = planned_s
        self._seconds: dict[int, _Second] = {}
        self._finished: set[int] = set()
        self._reported = -1
        self._total = LatencyHistogram()
        self._errors = 0
        self._lag: dict[int, PackedHistogram] = {}
        self._cpu: dict[int, list[float]] = {}

    def add(self, snapshot: Snapshot) -> list[ProgressView]:
        """Fold in one snapshot; returns views for the seconds it completed, in order."""
        second = self._seconds.get(snapshot.t)
        if second is None:
            second = self._seconds[snapshot.t] = _Second()
        second.workers.add(snapshot.worker)
        second.span = max(second.span, snapshot.span)
        second.users += snapshot.users
        second.connections += snapshot.connections
        second.connections_peak += snapshot.connections_peak
        second.sent += snapshot.sent
        second.received += snapshot.received
        second.errors += snapshot.errors
        if snapshot.latency is not None:
            latency = snapshot.latency.unpack()
            self._total.merge(latency)
            if second.latency is None:
                second.latency = latency  # the first worker's: no copy
            else:
                second.latency.merge(latency)
        self._errors += snapshot.errors
        self._lag[snapshot.worker] = snapshot.lag
        if snapshot.cpu is not None:
            self._cpu.setdefault(snapshot.worker, []).append(snapshot.cpu)
        if snapshot.final:
            self._finished.add(snapshot.worker)
        views: list[ProgressView] = []
        while True:
            t = self._reported + 1
            pending = self._seconds.get(t)
            if pending is None:
                break
            live = set(range(self._workers)) - {
                w for w in self._finished if w not in pending.workers
            }
            if not live <= pending.workers:
                break
            self._reported = t
            views.append(self._view(t, pending))
            pending.freeze()
        return views

    def _view(self, t: int, second: _Second) -> ProgressView:
        span = second.span or 1.0
        elapsed = t + span
        # Each worker judged on its own, as the result judges them: one saturated worker
        # delays its users even when the others' idle samples dilute the pooled figures.
        health = merge_health([(self._lag[w], self._cpu.get(w, [])) for w in sorted(self._lag)])
        return ProgressView(
            elapsed_s=elapsed,
            remaining_s=None if self._planned_s is None else max(0.0, self._planned_s - elapsed),
            users=second.users,
            connections=second.connections,
            connections_peak=second.connections_peak,
            sent_per_s=second.sent / span,
            received_per_s=second.received / span,
            p50=self._total.percentile(50) if self._total.count else None,
            p99=self._total.percentile(99) if self._total.count else None,
            errors=self._errors,
            warning=f"{SATURATION_WARNING}: {'; '.join(health.reasons)}"
            if health.saturated
            else None,
        )

    def points(self) -> tuple[SeriesPoint, ...]:
        """The time series, one point per second that any worker reported."""
        points = []
        for t in sorted(self._seconds):
            second = self._seconds[t]
            span = second.span or 1.0
            p50, p99 = second.percentiles()
            points.append(
                SeriesPoint(
                    t=t,
                    users=second.users,
                    sent_per_s=second.sent / span,
                    received_per_s=second.received / span,
                    p50=p50,
                    p99=p99,
                    errors=second.errors,
                    connections=second.connections,
                    connections_peak=second.connections_peak,
                )
            )
        return tuple(points)
