"""Pass/fail thresholds: which metric, which expression, and how a run measured up.

Pure: it takes threshold definitions and metric values and returns outcomes. It
never reads files (``squall.config`` does) and never imports the engine: metrics
are read through the small protocols below, which the result objects of
``squall.metrics.result`` satisfy.

A metric's kind decides the aggregations an expression may use:

========  ==========================================  =======================
kind      aggregations                                limit
========  ==========================================  =======================
trend     avg, min, max, med, p(N), count             duration (``8s``), count bare
rate      rate, passes, total                         bare number
counter   count, rate (per second)                    bare number
gauge     value, min, max                             bare number
========  ==========================================  =======================

A metric absent from a scenario gives ``NOT_APPLICABLE``, never ``PASSED``: a
check that did not run proves nothing. The same holds for a trend or rate with
no samples, except for ``count``/``total``/``passes``, which are then zero.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from squall.metrics.expressions import Aggregation, Expression, ExpressionError, parse_expression
from squall.metrics.recorder import ERRORS, MAX_ERROR_KINDS, OTHER_KINDS
from squall.metrics.result import Counter

__all__ = [
    "CAPACITY_THRESHOLDS",
    "DEFAULT_THRESHOLDS",
    "STANDARD_METRICS",
    "Aggregation",
    "Expression",
    "ExpressionError",
    "MetricKind",
    "OutcomeStatus",
    "Threshold",
    "ThresholdError",
    "ThresholdOutcome",
    "ThresholdSet",
    "Verdict",
    "evaluate",
    "kind_of",
    "parse_thresholds",
]


class ThresholdError(ValueError):
    """A threshold does not fit its metric; the message names the metric and what is allowed."""


class MetricKind(enum.Enum):
    TREND = "trend"
    COUNTER = "counter"
    RATE = "rate"
    GAUGE = "gauge"


ALLOWED: dict[MetricKind, tuple[Aggregation, ...]] = {
    MetricKind.TREND: (
        Aggregation.AVG,
        Aggregation.MIN,
        Aggregation.MAX,
        Aggregation.MED,
        Aggregation.PERCENTILE,
        Aggregation.COUNT,
    ),
    MetricKind.RATE: (Aggregation.RATE, Aggregation.PASSES, Aggregation.TOTAL),
    MetricKind.COUNTER: (Aggregation.COUNT, Aggregation.RATE),
    MetricKind.GAUGE: (Aggregation.VALUE, Aggregation.MIN, Aggregation.MAX),
}

#: The metric names scenarios record, with their kinds. ``errors.<kind>`` counters
#: are accepted too (see :func:`standard_kind`).
STANDARD_METRICS: Mapping[str, MetricKind] = {
    "ws_connect": MetricKind.TREND,
    "ack_time": MetricKind.TREND,
    "first_event_time": MetricKind.TREND,
    "response_time": MetricKind.TREND,
    "round_trip": MetricKind.TREND,
    "messages_sent": MetricKind.COUNTER,
    "messages_received": MetricKind.COUNTER,
    "operations": MetricKind.COUNTER,
    "errors": MetricKind.COUNTER,
    "timeouts": MetricKind.COUNTER,
    "iteration_time": MetricKind.TREND,
    "schedule_lag": MetricKind.TREND,
    "iterations": MetricKind.COUNTER,
    "dropped_iterations": MetricKind.COUNTER,
    "interrupted_iterations": MetricKind.COUNTER,
    "success": MetricKind.RATE,
    "delivery": MetricKind.RATE,
    "users": MetricKind.GAUGE,
    "memory_growth_mb": MetricKind.GAUGE,
    "cpu_avg_percent": MetricKind.GAUGE,
    "race_conditions_unprevented": MetricKind.GAUGE,
    "violations": MetricKind.GAUGE,
}


def standard_kind(metric: str) -> MetricKind | None:
    """The kind of a standard metric name (``errors.<kind>`` is a counter), else ``None``."""
    if metric.startswith("errors.") and len(metric) > len("errors."):
        return MetricKind.COUNTER
    return STANDARD_METRICS.get(metric)


# -- metric protocols -------------------------------------------------------------------


@runtime_checkable
class TrendLike(Protocol):
    """A distribution of durations in seconds (``min``, ``max`` and ``mean`` None when
    ``count`` is 0)."""

    @property
    def count(self) -> int: ...
    @property
    def min(self) -> float | None: ...
    @property
    def max(self) -> float | None: ...
    @property
    def mean(self) -> float | None: ...
    def percentile(self, p: float) -> float: ...


@runtime_checkable
class RateLike(Protocol):
    """Passes out of a total."""

    @property
    def passes(self) -> int: ...
    @property
    def total(self) -> int: ...


@runtime_checkable
class CounterLike(Protocol):
    """A count over the run, and its rate per second."""

    @property
    def count(self) -> int: ...
    @property
    def per_second(self) -> float | None: ...


@runtime_checkable
class GaugeLike(Protocol):
    """A last value with its extremes."""

    @property
    def value(self) -> float: ...
    @property
    def min(self) -> float: ...
    @property
    def max(self) -> float: ...


def kind_of(metric: object) -> MetricKind:
    """The kind of a metric object, by the attributes it carries."""
    # Order matters: a trend also has count/min/max, a gauge min/max.
    if isinstance(metric, RateLike):
        return MetricKind.RATE
    if isinstance(metric, TrendLike):
        return MetricKind.TREND
    if isinstance(metric, CounterLike):
        return MetricKind.COUNTER
    if isinstance(metric, GaugeLike):
        return MetricKind.GAUGE
    raise ThresholdError(
        f"{type(metric).__name__} is not a metric: expected a Trend, Rate, Counter or Gauge"
    )


# -- definitions --------------------------------------------------------------------------


@dataclass(frozen=True)
class Threshold:
    """One expression on one metric."""

    metric: str
    expression: Expression

    @classmethod
    def parse(cls, metric: str, text: str, kind: MetricKind | None = None) -> Threshold:
        """Parse ``text`` for ``metric``; check it against ``kind`` when the kind is known."""
        try:
            expression = parse_expression(text)
        except ExpressionError as exc:
            raise ExpressionError(f"metric {metric!r}: {exc}") from None
        threshold = cls(metric, expression)
        if kind is not None:
            threshold.check_kind(kind)
        return threshold

    def check_kind(self, kind: MetricKind) -> None:
        """Raise :class:`ThresholdError` if the expression does not fit a metric of ``kind``."""
        expr = self.expression
        allowed = ALLOWED[kind]
        if expr.aggregation not in allowed:
            names = ", ".join("p(N)" if a is Aggregation.PERCENTILE else a.value for a in allowed)
            raise ThresholdError(
                f"metric {self.metric!r} is a {kind.value}: aggregation {expr.label!r} in "
                f"{expr.source!r} is not allowed; use one of {names}"
            )
        is_fraction = kind is MetricKind.RATE and expr.aggregation is Aggregation.RATE
        if is_fraction and not 0.0 <= expr.limit <= 1.0:
            raise ThresholdError(
                f"metric {self.metric!r} is a rate, a fraction from 0 to 1: the limit in "
                f"{expr.source!r} is out of its range; write 90 % as 0.9"
            )
        wants_duration = kind is MetricKind.TREND and expr.aggregation is not Aggregation.COUNT
        if wants_duration and not expr.is_duration:
            raise ThresholdError(
                f"metric {self.metric!r} is a trend of durations: the limit in {expr.source!r} "
                f"needs a unit (us, ms, s, m), e.g. '{expr.label} {expr.operator.value} "
                f"{expr.limit:g}ms' for milliseconds (what k6 assumes of a bare number) or "
                f"'{expr.label} {expr.operator.value} {expr.limit:g}s' for seconds"
            )
        if not wants_duration and expr.is_duration:
            raise ThresholdError(
                f"metric {self.metric!r} ({kind.value}, {expr.label}) is not a duration: "
                f"write the limit in {expr.source!r} as a bare number, without {expr.unit!r}"
            )


@dataclass(frozen=True)
class ThresholdSet:
    """Thresholds by metric, in definition order. An empty tuple disables a metric."""

    rules: Mapping[str, tuple[Threshold, ...]] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Threshold]:
        for thresholds in self.rules.values():
            yield from thresholds

    def __len__(self) -> int:
        return sum(len(t) for t in self.rules.values())

    def merged(self, other: ThresholdSet) -> ThresholdSet:
        """``self`` with every metric ``other`` names replaced by ``other``'s list."""
        rules = dict(self.rules)
        rules.update(other.rules)
        return ThresholdSet(rules)

    def to_dict(self) -> dict[str, list[str]]:
        return {m: [t.expression.source for t in ts] for m, ts in self.rules.items()}


def parse_thresholds(
    spec: Mapping[str, Sequence[str]],
    kinds: Mapping[str, MetricKind | None] | None = None,
) -> ThresholdSet:
    """Build a :class:`ThresholdSet` from ``{metric: [expression, ...]}``.

    ``kinds`` gives the kind of non-standard metrics (``None`` = checked at
    evaluation time against the recorded metric).
    """
    rules: dict[str, tuple[Threshold, ...]] = {}
    for metric, texts in spec.items():
        kind = standard_kind(metric)
        if kind is None and kinds is not None:
            kind = kinds.get(metric)
        rules[metric] = tuple(Threshold.parse(metric, text, kind) for text in texts)
    return ThresholdSet(rules)


#: Performance limits that hold for every scenario (the original description's numbers).
#: ``ws_connect`` uses p(95) rather than max: one slow handshake among thousands is
#: noise on a loaded machine, while a slow 95th percentile is a real regression.
DEFAULT_THRESHOLDS: ThresholdSet = parse_thresholds(
    {
        "response_time": ["avg <= 3s", "p(95) <= 8s", "p(99) <= 15s"],
        "success": ["rate >= 0.90"],
        "memory_growth_mb": ["value <= 500"],
        "cpu_avg_percent": ["value <= 80"],
        "ws_connect": ["p(95) <= 5s"],
        "race_conditions_unprevented": ["value <= 5"],
        "violations": ["value == 0"],
        # A rate, whatever the run's size: a floor of capacity only, a run at --scale 0.2
        # that delivered no event passed.
        "delivery": ["rate >= 0.80"],
    }
)

#: Capacity floors; they apply only to scenarios sized for them.
CAPACITY_THRESHOLDS: ThresholdSet = parse_thresholds(
    {
        "users": ["value >= 50"],
        "messages_sent": ["count >= 500"],
        "operations": ["count >= 100"],
    }
)


# -- evaluation ------------------------------------------------------------------------


class OutcomeStatus(enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_APPLICABLE = "not_applicable"


@dataclass(frozen=True)
class ThresholdOutcome:
    """How one threshold fared in one scenario."""

    scenario: str
    metric: str
    expression: str
    aggregation: str
    operator: str
    limit: float
    observed: float | None
    status: OutcomeStatus
    diagnostic: str
    #: ``observed`` as the diagnostic shows it, with its unit (``"—"`` when there is none).
    shown: str = "—"

    def to_dict(self) -> dict[str, object]:
        return {
            "scenario": self.scenario,
            "metric": self.metric,
            "expression": self.expression,
            "aggregation": self.aggregation,
            "operator": self.operator,
            "limit": self.limit,
            "observed": self.observed,
            "status": self.status.value,
            "diagnostic": self.diagnostic,
            "shown": self.shown,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ThresholdOutcome:
        observed = data["observed"]
        return cls(
            scenario=str(data["scenario"]),
            metric=str(data["metric"]),
            expression=str(data["expression"]),
            aggregation=str(data["aggregation"]),
            operator=str(data["operator"]),
            limit=float(data["limit"]),  # type: ignore[arg-type]
            observed=None if observed is None else float(observed),  # type: ignore[arg-type]
            status=OutcomeStatus(data["status"]),
            diagnostic=str(data["diagnostic"]),
            shown=str(data.get("shown", "—")),
        )


@dataclass(frozen=True)
class Verdict:
    """The summary of a set of outcomes; ``exit_code`` is 1 when anything failed."""

    passed: int
    failed: int
    not_applicable: int

    @classmethod
    def of(cls, outcomes: Iterable[ThresholdOutcome]) -> Verdict:
        counts = dict.fromkeys(OutcomeStatus, 0)
        for outcome in outcomes:
            counts[outcome.status] += 1
        return cls(
            counts[OutcomeStatus.PASSED],
            counts[OutcomeStatus.FAILED],
            counts[OutcomeStatus.NOT_APPLICABLE],
        )

    @property
    def ok(self) -> bool:
        return self.failed == 0

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    @property
    def counts(self) -> str:
        return f"{self.passed} passed, {self.failed} failed, {self.not_applicable} not applicable"

    def __str__(self) -> str:
        return f"{'PASSED' if self.ok else 'FAILED'}: {self.counts}"


def evaluate(
    thresholds: ThresholdSet | Iterable[Threshold],
    metrics: Mapping[str, object],
    scenario: str,
) -> list[ThresholdOutcome]:
    """Check every threshold against ``metrics`` of ``scenario``, in definition order.

    A recorded metric whose kind does not allow an expression's aggregation (a custom
    metric declared without its kind, or with another) fails that threshold, its
    diagnostic saying why: raised, it lost every measurement of the scenario.
    """
    outcomes: list[ThresholdOutcome] = []
    folded = metrics.get(f"{ERRORS}.{OTHER_KINDS}")
    folded_count = folded.count if isinstance(folded, Counter) else 0
    for threshold in thresholds:
        if folded_count and _folded_kind(threshold.metric):
            outcomes.append(_unjudgeable_kind(threshold, scenario, folded_count))
            continue
        outcome = _evaluate_one(threshold, metrics.get(threshold.metric), scenario)
        if threshold.metric not in metrics:
            outcome = _with_suggestion(outcome, threshold.metric, metrics)
        outcomes.append(outcome)
    return outcomes


def _folded_kind(name: str) -> bool:
    """Whether ``name`` is one kind's error counter, which errors past the recorder's kinds
    (``errors.other_kinds``) may have been counted instead of."""
    return name.startswith(f"{ERRORS}.") and name != f"{ERRORS}.{OTHER_KINDS}"


def _unjudgeable_kind(threshold: Threshold, scenario: str, folded: int) -> ThresholdOutcome:
    """A threshold on one error kind when errors of kinds past the recorder's bound were
    counted together: some may be of that kind, in one process or all, so neither its
    absence nor its count can be read; a target flooding kinds must not hide the one a
    threshold guards. Failed, with why."""
    return _outcome(
        threshold,
        scenario,
        None,
        OutcomeStatus.FAILED,
        f"[{scenario}] {threshold.metric} {threshold.expression.source}: cannot be judged: "
        f"{folded} error(s) of kinds past the first {MAX_ERROR_KINDS} were counted together in "
        f"{ERRORS}.{OTHER_KINDS}, some of them possibly of this kind (its samples name them)",
    )


def _with_suggestion(
    outcome: ThresholdOutcome, name: str, metrics: Mapping[str, object]
) -> ThresholdOutcome:
    """A metric that was not recorded, named like one that was (a typo in a test's
    threshold, say): the diagnostic names the recorded one."""
    close = difflib.get_close_matches(name, list(metrics), n=1, cutoff=0.88)
    if not close:
        return outcome
    return dataclasses.replace(
        outcome, diagnostic=f"{outcome.diagnostic} (did you mean {close[0]!r}?)"
    )


def _evaluate_one(threshold: Threshold, metric: object, scenario: str) -> ThresholdOutcome:
    expr = threshold.expression
    name = threshold.metric
    if metric is None:
        return _outcome(
            threshold,
            scenario,
            None,
            OutcomeStatus.NOT_APPLICABLE,
            f"[{scenario}] {name} {expr.source}: not applicable, "
            f"the metric was not recorded in this scenario",
        )
    kind = kind_of(metric)
    try:
        threshold.check_kind(kind)
    except ThresholdError as exc:
        return _outcome(
            threshold,
            scenario,
            None,
            OutcomeStatus.FAILED,
            f"[{scenario}] {name} {expr.source}: FAILED, it cannot judge what was recorded: {exc}",
        )
    observed = _observe(expr, kind, metric)
    if observed is None:
        why = "has no rate per second" if kind is MetricKind.COUNTER else "has no samples"
        return _outcome(
            threshold,
            scenario,
            None,
            OutcomeStatus.NOT_APPLICABLE,
            f"[{scenario}] {name} {expr.source}: not applicable, the metric {why}",
        )
    passed = expr.operator.holds(observed, expr.limit)
    status = OutcomeStatus.PASSED if passed else OutcomeStatus.FAILED
    unit = _unit(name, kind, expr)
    shown = _format(observed, unit)
    limit = _format(expr.limit, unit)
    verdict = "ok" if passed else "FAILED"
    return _outcome(
        threshold,
        scenario,
        observed,
        status,
        f"[{scenario}] {name} {expr.label} = {shown}, limit {expr.operator.value} {limit}: "
        f"{verdict}",
        shown,
    )


def _outcome(
    threshold: Threshold,
    scenario: str,
    observed: float | None,
    status: OutcomeStatus,
    diagnostic: str,
    shown: str = "—",
) -> ThresholdOutcome:
    expr = threshold.expression
    return ThresholdOutcome(
        scenario=scenario,
        metric=threshold.metric,
        expression=expr.source,
        aggregation=expr.label,
        operator=expr.operator.value,
        limit=expr.limit,
        observed=observed,
        status=status,
        diagnostic=diagnostic,
        shown=shown,
    )


def _observe(expr: Expression, kind: MetricKind, metric: object) -> float | None:
    """The aggregated value, or ``None`` when the metric has no samples to aggregate."""
    agg = expr.aggregation
    if kind is MetricKind.TREND:
        assert isinstance(metric, TrendLike)
        if agg is Aggregation.COUNT:
            return float(metric.count)
        if metric.count == 0:
            return None
        value: float | None
        if agg is Aggregation.AVG:
            value = metric.mean
        elif agg is Aggregation.MIN:
            value = metric.min
        elif agg is Aggregation.MAX:
            value = metric.max
        elif agg is Aggregation.MED:
            value = metric.percentile(50.0)
        else:
            assert expr.percentile is not None
            value = metric.percentile(expr.percentile)
        return None if value is None else float(value)
    if kind is MetricKind.RATE:
        assert isinstance(metric, RateLike)
        if agg is Aggregation.PASSES:
            return float(metric.passes)
        if agg is Aggregation.TOTAL:
            return float(metric.total)
        return None if metric.total == 0 else float(metric.passes) / float(metric.total)
    if kind is MetricKind.COUNTER:
        assert isinstance(metric, CounterLike)
        if agg is Aggregation.COUNT:
            return float(metric.count)
        return None if metric.per_second is None else float(metric.per_second)
    assert isinstance(metric, GaugeLike)
    if agg is Aggregation.MIN:
        return float(metric.min)
    if agg is Aggregation.MAX:
        return float(metric.max)
    return float(metric.value)


def _unit(metric: str, kind: MetricKind, expr: Expression) -> str:
    if kind is MetricKind.TREND:
        return "" if expr.aggregation is Aggregation.COUNT else "duration"
    if kind is MetricKind.COUNTER and expr.aggregation is Aggregation.RATE:
        return "/s"
    if metric.endswith("_mb"):
        return " MB"
    if metric.endswith("_percent"):
        return "%"
    return ""


def _format(value: float, unit: str) -> str:
    if unit == "duration":
        return format_duration(value)
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return f"{int(value)}{unit}"
    return f"{value:.4g}{unit}"


#: Duration units, smallest first: (seconds per unit, suffix, the value that rounds up to
#: the next unit).
_DURATION_UNITS = (
    (1e-6, "µs", 1000.0),
    (1e-3, "ms", 1000.0),
    (1.0, "s", 60.0),
    (60.0, "m", math.inf),
)


def format_duration(seconds: float) -> str:
    """``0.2`` → ``200ms``, ``8.25`` → ``8.25s``, ``90`` → ``1.5m``; four significant digits.

    The unit is chosen after rounding, so ``0.99996`` reads ``1s``, not ``1000ms``.
    """
    magnitude = abs(seconds)
    if magnitude == 0:
        return "0s"
    text = f"{seconds:.4g}s"
    for size, suffix, limit in _DURATION_UNITS:
        if magnitude < size * limit or not math.isfinite(magnitude):
            text = f"{seconds / size:.4g}"
            if abs(float(text)) < limit:
                return text + suffix
    return text
