"""Compare two runs' figures and name the regressions (pure).

A *figure* is one number of one metric of one scenario: a trend's mean, p50,
p95 and p99; a counter's count and per-second throughput; a rate's rate; a
gauge's value. Each figure has a direction: latency up, rates down, throughput
down, and more violations, CPU or memory growth are regressions; counts are
shown but never judged. A change is a regression when it goes the wrong way
by more than the tolerance (relative to the earlier value) *and* more than the
figure's noise floor (e.g. 1 ms for latencies), so a 2 ms → 3 ms p99 is not
called a 50 % regression.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: Tolerance of ``squall compare`` and ``--baseline`` when none is given.
DEFAULT_TOLERANCE = 0.10


class ToleranceError(ValueError):
    """A tolerance that is not a non-negative percentage or fraction."""


class Direction(enum.Enum):
    HIGHER_IS_WORSE = "higher is worse"
    LOWER_IS_WORSE = "lower is worse"
    NEUTRAL = "not judged"


#: Absolute changes below these are noise, whatever the tolerance says.
NOISE_FLOOR_BY_METRIC = {"cpu_avg_percent": 5.0, "memory_growth_mb": 20.0}
#: Latency figures (seconds) move by less than this between identical runs.
TREND_NOISE_FLOOR_S = 0.001

_TREND_STATS = ("mean", "p50", "p95", "p99")


@dataclass(frozen=True)
class Figure:
    scenario: str
    metric: str
    stat: str
    value: float
    direction: Direction

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.scenario, self.metric, self.stat)


@dataclass(frozen=True)
class Change:
    """One figure in both runs (``None`` on the side where it is missing)."""

    scenario: str
    metric: str
    stat: str
    before: float | None
    after: float | None
    direction: Direction
    regression: bool

    @property
    def relative(self) -> float | None:
        """(after − before) / |before|; None when either is missing or before is 0."""
        if self.before is None or self.after is None or self.before == 0:
            return None
        return (self.after - self.before) / abs(self.before)

    def describe(self) -> str:
        rel = self.relative
        change = f"{rel:+.1%}" if rel is not None else "new" if self.before is None else "n/a"
        return (
            f"[{self.scenario}] {self.metric} {self.stat}: {_fmt(self.before)} → "
            f"{_fmt(self.after)} ({change}, {self.direction.value})"
        )


@dataclass(frozen=True)
class Comparison:
    before_id: str
    after_id: str
    tolerance: float
    changes: tuple[Change, ...]
    #: How the two runs were set up differently (``"scale: 1 → 0.5"``): their figures may
    #: not be comparable. See :func:`setting_differences`.
    differences: tuple[str, ...] = ()

    @property
    def regressions(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.regression)

    @property
    def compared(self) -> int:
        """How many figures both runs hold: none, and "no regression" would judge nothing."""
        return sum(1 for c in self.changes if c.before is not None and c.after is not None)


def with_baseline(report: Mapping[str, Any], comparison: Comparison) -> dict[str, Any]:
    """``report`` (a report.json dictionary) with the comparison against its baseline in
    ``baseline``; a run that regressed fails (``verdict.ok`` false, ``verdict.regressions``
    their number), so every file made from it says what the exit code says."""
    regressions = [change.describe() for change in comparison.regressions]
    verdict = dict(report["verdict"])
    if regressions:
        verdict["ok"] = False
        verdict["regressions"] = len(regressions)
    return {
        **report,
        "verdict": verdict,
        "baseline": {
            "run_id": comparison.before_id,
            "tolerance": comparison.tolerance,
            "compared": comparison.compared,
            "regressions": regressions,
            "differences": list(comparison.differences),
        },
    }


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if value != 0 and abs(value) < 1:
        return f"{value:.4g}"
    return f"{value:,.2f}"


def parse_tolerance(text: str | float) -> float:
    """``"10%"`` → 0.10, ``"0.1"`` → 0.1; raises :class:`ToleranceError` otherwise.

    A bare number of 1 or more is refused: ``5`` would be 500 %, and is almost always
    meant as 5 %; ``500%`` says it when it is meant.
    """
    raw = str(text).strip()
    percent = raw.endswith("%")
    try:
        value = float(raw[:-1]) / 100 if percent else float(raw)
    except ValueError:
        raise ToleranceError(
            f"tolerance {text!r} is not a number; write a percentage like 10% or a fraction "
            "like 0.1"
        ) from None
    if not math.isfinite(value):
        raise ToleranceError(
            f"tolerance {text!r} is not a finite number; write a percentage like 10% or a "
            "fraction like 0.1"
        )
    if value < 0:
        raise ToleranceError(f"tolerance {text!r} is negative; use e.g. 10% or 0")
    if not percent and value >= 1:
        raise ToleranceError(
            f"tolerance {text!r} would be {value:.0%}: a bare number is a fraction; write "
            f"{raw}% for {raw} percent, or {value:.0%} if that is what you mean"
        )
    return value


#: Counters of things that should not happen (besides ``errors*``): more of them per second
#: is worse, not more throughput. The client's timeouts, the chats' sequence gaps and
#: isolation leaks, and iterations a run's end cut short or the open model dropped.
BAD_EVENT_COUNTERS = frozenset(
    {"timeouts", "seq_gaps", "isolation_leaks", "interrupted_iterations", "dropped_iterations"}
)


#: Gauges of which less is worse: the users reached, and the race scenarios' proof that they
#: caught the race they stage (``naive_caught``, ``unfenced_caught``: 1 caught, 0 not).
LOWER_IS_WORSE_GAUGES = frozenset({"users", "naive_caught", "unfenced_caught"})
#: Gauges that describe the run rather than judge it: the size of the last context built.
DESCRIPTIVE_GAUGES = frozenset({"context_chars", "context_chars_measured", "context_tokens_peak"})


def _bad_events(metric: str) -> bool:
    """Whether ``metric`` counts things that should not happen (recorded from the first)."""
    return metric.startswith("errors") or metric in BAD_EVENT_COUNTERS


def direction_of(metric: str, kind: str, stat: str) -> Direction:
    if kind == "trend":
        return Direction.HIGHER_IS_WORSE
    if kind == "rate":
        return Direction.LOWER_IS_WORSE
    if kind == "counter":
        if stat != "per_second":
            return Direction.NEUTRAL
        return Direction.HIGHER_IS_WORSE if _bad_events(metric) else Direction.LOWER_IS_WORSE
    if kind == "gauge":
        if metric in DESCRIPTIVE_GAUGES:
            return Direction.NEUTRAL
        if metric in LOWER_IS_WORSE_GAUGES:
            return Direction.LOWER_IS_WORSE
        return Direction.HIGHER_IS_WORSE
    return Direction.NEUTRAL


def figures_of(rows: Iterable[Mapping[str, Any]]) -> list[Figure]:
    """Figures from performance_metrics rows (or dicts with the same keys).

    ``count`` is a trend's count and a rate's total; a trend or rate with none has no
    figures.
    """
    figures: list[Figure] = []
    for row in rows:
        kind = str(row["kind"])
        stats = {
            "trend": _TREND_STATS,
            "counter": ("count", "per_second"),
            "rate": ("rate",),
            "gauge": ("value",),
        }.get(kind, ())
        if kind in ("trend", "rate") and row.get("count") == 0:
            # No samples: its zeros measure nothing (a threshold on it is not applicable),
            # so a 0 s latency or a 0 % rate must neither regress nor hide one.
            stats = ()
        for stat in stats:
            value = row.get(stat)
            if value is None:
                continue
            figures.append(
                Figure(
                    str(row["scenario"]),
                    str(row["metric"]),
                    stat,
                    float(value),
                    direction_of(str(row["metric"]), kind, stat),
                )
            )
    return figures


def figures_of_report(report: Mapping[str, Any]) -> list[Figure]:
    """Figures from a report.json dictionary (metrics as written by ``to_dict``)."""
    rows = []
    for s in report.get("scenarios", []):
        for name, m in s.get("metrics", {}).items():
            row = dict(m)
            row.update(scenario=s["name"], metric=name, kind=m.get("type"))
            if row["kind"] == "rate":
                row["count"] = m.get("total")
            rows.append(row)
    return figures_of(rows)


def noise_floor(metric: str, stat: str) -> float:
    """The absolute change below which a figure is not judged."""
    if metric in NOISE_FLOOR_BY_METRIC:
        return NOISE_FLOOR_BY_METRIC[metric]
    return TREND_NOISE_FLOOR_S if stat in _TREND_STATS else 0.0


#: The part of the allowed change a float's rounding may add to it: 33 ms after 30 ms is
#: 3.0000000000000027 ms more in binary, which read as more than 10 % of 30 ms.
_ROUNDING = 1e-9


def is_regression(
    before: float, after: float, direction: Direction, tolerance: float, floor: float
) -> bool:
    """Whether ``after`` went the wrong way by more than the tolerance (a change of exactly
    the tolerance is not a regression)."""
    allowed = max(floor, tolerance * abs(before)) * (1 + _ROUNDING)
    if direction is Direction.HIGHER_IS_WORSE:
        return after - before > allowed
    if direction is Direction.LOWER_IS_WORSE:
        return before - after > allowed
    return False


#: The run settings that change what the figures mean (a run's ``config``, the machine, and
#: whether the run was cut short by Ctrl-C or SIGTERM).
COMPARED_SETTINGS = (
    "adapter",
    "scale",
    "duration_s",
    "processes",
    "workers",
    "host",
    "interrupted",
)


def _target_of(settings: Mapping[str, Any]) -> str:
    """The target a run's settings name, as a difference shows it."""
    if settings["platform"] is not None:
        return "the platform squall started"
    return "none" if settings["target"] is None else str(settings["target"])


def setting_differences(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[str, ...]:
    """``"name: old → new"`` for each of :data:`COMPARED_SETTINGS` the two runs' settings
    both record and disagree on; for each parameter of their scenarios set in either
    (``params``: ``websocket_concurrency.users: 10 → 4``); for the target (another service
    is no baseline; the platform squall starts for each run listens on a port of its own,
    which is no difference); and for each setting of the platforms squall started for them
    (``platform.<name>``) (pure)."""
    found: list[str] = []
    for name in COMPARED_SETTINGS:
        if name in before and name in after and before[name] != after[name]:
            old, new = ("default" if v is None else v for v in (before[name], after[name]))
            found.append(f"{name}: {old} → {new}")
    was_set, now_set = before.get("params"), after.get("params")
    if isinstance(was_set, Mapping) and isinstance(now_set, Mapping):
        for scenario in sorted({*was_set, *now_set}):
            found += _differences(scenario, was_set.get(scenario, {}), now_set.get(scenario, {}))
    if all("target" in s and "platform" in s for s in (before, after)):
        old, new = (_target_of(s) for s in (before, after))
        if old != new:
            found.append(f"target: {old} → {new}")
    # The settings of the platform squall started (``[platform]``), one by one.
    was, now = before.get("platform"), after.get("platform")
    if isinstance(was, Mapping) and isinstance(now, Mapping):
        found += _differences("platform", was, now)
    return tuple(found)


def _differences(prefix: str, was: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """``"prefix.name: old → new"`` for each setting of either mapping the other has not the
    same (one left out reads ``default``)."""
    found = []
    for name in sorted({*was, *now}):
        old, new = was.get(name, "default"), now.get(name, "default")
        if old != new:
            found.append(f"{prefix}.{name}: {old} → {new}")
    return found


def compare(
    before: Sequence[Figure],
    after: Sequence[Figure],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    before_id: str = "before",
    after_id: str = "after",
    differences: Sequence[str] = (),
) -> Comparison:
    """Every figure side by side, in a stable order, with regressions flagged."""
    old = {f.key: f for f in before}
    new = {f.key: f for f in after}
    # A counter of errors or timeouts is recorded from the first one: in a scenario of both
    # runs, one side's missing counter is none of them (0 → N is judged, as any increase).
    both = {f.scenario for f in before} & {f.scenario for f in after}
    for side, other in ((old, new), (new, old)):
        for key, figure in other.items():
            if key not in side and key[0] in both and _bad_events(key[1]):
                side[key] = Figure(*key, 0.0, figure.direction)
    changes = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key), new.get(key)
        either = b if b is not None else a
        assert either is not None
        regression = False
        if a is not None and b is not None:
            floor = noise_floor(key[1], key[2])
            regression = is_regression(a.value, b.value, either.direction, tolerance, floor)
        changes.append(
            Change(
                key[0],
                key[1],
                key[2],
                a.value if a else None,
                b.value if b else None,
                either.direction,
                regression,
            )
        )
    return Comparison(before_id, after_id, tolerance, tuple(changes), tuple(differences))
