"""The monitor's serialisable output: per group, stats and the raw time series."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from squall.monitor.stats import GroupStats, ResourceSample
from squall.monitor.targets import TARGET


@dataclass(frozen=True)
class GroupReport:
    """One process group over the run.

    ``series`` may be thinned out on long runs (one sample in ``stride`` kept);
    ``stats`` are exact either way. ``denied`` counts per-process readings refused
    by the OS (processes of other users), which then count as zero.
    """

    name: str
    stats: GroupStats
    series: tuple[ResourceSample, ...] = ()
    pids: tuple[int, ...] = ()
    stride: int = 1
    denied: int = 0

    @property
    def measured(self) -> bool:
        """Whether any sample found a process of the group (else its figures are all zero)."""
        return self.stats.samples > 0 and self.stats.peak_processes > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "stats": self.stats.to_dict(),
            "series": [s.to_dict() for s in self.series],
            "pids": list(self.pids),
            "stride": self.stride,
            "denied": self.denied,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GroupReport:
        return cls(
            name=str(data["name"]),
            stats=GroupStats.from_dict(data["stats"]),
            series=tuple(ResourceSample.from_dict(s) for s in data["series"]),
            pids=tuple(int(p) for p in data["pids"]),
            stride=int(data["stride"]),
            denied=int(data["denied"]),
        )


@dataclass(frozen=True)
class MonitorReport:
    """Every monitored group, keyed by name (``target``, ``postgres``, ``redis``, ``generator``).

    ``failed_samples`` counts the ticks the OS gave no reading for at all (``/proc``
    unreadable, e.g. at the open-files limit), and ``sample_error`` is the first such error.
    """

    interval_s: float
    cpu_count: int
    groups: Mapping[str, GroupReport] = field(default_factory=dict)
    failed_samples: int = 0
    sample_error: str | None = None

    def gauges(self, group: str = TARGET) -> dict[str, float]:
        """The values of the ``memory_growth_mb`` and ``cpu_avg_percent`` gauges for ``group``,
        as thresholds judge them: CPU as a share of the whole machine (the group's average
        in % of one core, divided by :attr:`cpu_count`).

        Empty when the group was not monitored, or no process of it was found in any
        sample (a PID that does not exist, a port nothing listens on), so the thresholds
        on them are not applicable rather than passed on zeros.
        """
        found = self.groups.get(group)
        if found is None or not found.measured:
            return {}
        return {
            "memory_growth_mb": found.stats.growth_mb,
            "cpu_avg_percent": found.stats.cpu_avg_percent / max(1, self.cpu_count),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "interval_s": self.interval_s,
            "cpu_count": self.cpu_count,
            "groups": {name: g.to_dict() for name, g in self.groups.items()},
            "failed_samples": self.failed_samples,
            "sample_error": self.sample_error,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MonitorReport:
        return cls(
            interval_s=float(data["interval_s"]),
            cpu_count=int(data["cpu_count"]),
            groups={name: GroupReport.from_dict(g) for name, g in data["groups"].items()},
            # Reports written before these fields existed have neither.
            failed_samples=int(data.get("failed_samples", 0)),
            sample_error=None if data.get("sample_error") is None else str(data["sample_error"]),
        )
