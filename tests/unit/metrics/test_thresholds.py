"""Threshold expressions and their evaluation, on hand-written metric values."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from squall.metrics.expressions import Aggregation, ExpressionError, Operator, parse_expression
from squall.metrics.histogram import LatencyHistogram
from squall.metrics.result import Counter as ResultCounter
from squall.metrics.result import Trend as ResultTrend
from squall.metrics.thresholds import (
    CAPACITY_THRESHOLDS,
    DEFAULT_THRESHOLDS,
    MetricKind,
    OutcomeStatus,
    Threshold,
    ThresholdError,
    ThresholdOutcome,
    ThresholdSet,
    Verdict,
    evaluate,
    format_duration,
    kind_of,
    parse_thresholds,
)


@dataclass(frozen=True)
class Trend:
    """Durations in seconds; percentiles by nearest rank over the raw values."""

    values: tuple[float, ...]

    @property
    def count(self) -> int:
        return len(self.values)

    @property
    def min(self) -> float:
        return min(self.values, default=0.0)

    @property
    def max(self) -> float:
        return max(self.values, default=0.0)

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values) if self.values else 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.values)
        rank = max(1, math.ceil(p / 100 * len(ordered)))
        return ordered[rank - 1]


@dataclass(frozen=True)
class Rate:
    passes: int
    total: int

    @property
    def rate(self) -> float:
        return self.passes / self.total if self.total else 0.0


@dataclass(frozen=True)
class Counter:
    count: int
    per_second: float | None


@dataclass(frozen=True)
class Gauge:
    value: float
    min: float
    max: float


# 1..100 ms response times: avg 50.5 ms, median 50 ms, p95 95 ms, max 100 ms.
LATENCIES = Trend(tuple(i / 1000 for i in range(1, 101)))


def one(metric: str, expression: str, value: object, scenario: str = "s") -> ThresholdOutcome:
    thresholds = parse_thresholds({metric: [expression]})
    (outcome,) = evaluate(thresholds, {metric: value}, scenario)
    return outcome


# -- parsing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "aggregation", "op", "limit", "percentile"),
    [
        ("p(95) < 8s", Aggregation.PERCENTILE, Operator.LT, 8.0, 95.0),
        ("p(99.9)<=15s", Aggregation.PERCENTILE, Operator.LE, 15.0, 99.9),
        ("avg <= 3s", Aggregation.AVG, Operator.LE, 3.0, None),
        ("med < 200ms", Aggregation.MED, Operator.LT, 0.2, None),
        ("max > 250us", Aggregation.MAX, Operator.GT, 250e-6, None),
        ("min >= 5µs", Aggregation.MIN, Operator.GE, 5e-6, None),
        ("avg < 1.5m", Aggregation.AVG, Operator.LT, 90.0, None),
        ("rate >= 0.9", Aggregation.RATE, Operator.GE, 0.9, None),
        ("count >= 500", Aggregation.COUNT, Operator.GE, 500.0, None),
        ("value == 0", Aggregation.VALUE, Operator.EQ, 0.0, None),
        ("passes != 3", Aggregation.PASSES, Operator.NE, 3.0, None),
        ("total > 1e3", Aggregation.TOTAL, Operator.GT, 1000.0, None),
        ("  VALUE<=500  ", Aggregation.VALUE, Operator.LE, 500.0, None),
    ],
)
def test_parse_expression(
    text: str, aggregation: Aggregation, op: Operator, limit: float, percentile: float | None
) -> None:
    expr = parse_expression(text)
    assert expr.aggregation is aggregation
    assert expr.operator is op
    assert expr.limit == pytest.approx(limit)
    assert expr.percentile == percentile
    assert expr.source == text.strip()


def test_a_duration_limit_is_the_float_a_measured_duration_reads_as() -> None:
    # Measurements read as whole microseconds / 10**6; 5 * 1e-6, 500 * 1e-6 and 0.043 * 1e-3
    # are each a hair off those floats, so a limit written that way must not be computed so.
    for us in range(1, 2048):
        assert parse_expression(f"max <= {us}us").limit == us / 1e6, us
        assert parse_expression(f"max <= {us / 1000}ms").limit == us / 1e6, us
    assert parse_expression("avg < 1.5m").limit == 90.0
    with pytest.raises(ExpressionError, match="'avg < 1e308m' is not a finite duration"):
        parse_expression("avg < 1e308m")


@pytest.mark.parametrize(
    ("limit", "us"),
    [
        ("5us", 5),
        ("20us", 20),
        ("0.043ms", 43),
        ("0.09ms", 90),
        ("1.9ms", 1900),
        # From 2,048 µs up values share slots (8,000..8,003 µs one, read as 8.003 ms), but
        # the histogram keeps the exact extremes and no percentile or mean lies beyond them.
        ("8ms", 8000),
        ("12.3ms", 12_300),
        ("2.5s", 2_500_000),
        ("1m", 60_000_000),
    ],
)
def test_a_trend_exactly_at_a_duration_limit(limit: str, us: int) -> None:
    seconds = us / 1e6
    trend = ResultTrend.from_histogram("response_time", LatencyHistogram.of([seconds] * 3))
    read_back = ResultTrend.from_dict(trend.to_dict())
    assert trend.max == trend.min == trend.mean == seconds
    for text, status in [
        (f"max <= {limit}", OutcomeStatus.PASSED),
        (f"max < {limit}", OutcomeStatus.FAILED),
        (f"min >= {limit}", OutcomeStatus.PASSED),
        (f"avg <= {limit}", OutcomeStatus.PASSED),
        (f"med == {limit}", OutcomeStatus.PASSED),
        (f"p(99) == {limit}", OutcomeStatus.PASSED),
        (f"p(99.9) <= {limit}", OutcomeStatus.PASSED),
        (f"p(99) != {limit}", OutcomeStatus.FAILED),
    ]:
        assert one("response_time", text, trend).status is status, text
        assert one("response_time", text, read_back).status is status, text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "cannot parse threshold expression ''"),
        ("p95 < 8s", "cannot parse threshold expression 'p95 < 8s'"),
        ("avgg <= 3s", "unknown aggregation 'avgg' in threshold expression 'avgg <= 3s'"),
        ("p(0) < 1s", "percentile '0' out of range"),
        ("p(101) < 1s", "expected p(N) with 0 < N <= 100"),
        ("p(x) < 1s", "percentile 'x' is not a number"),
        ("avg <= -3s", "negative duration in threshold expression 'avg <= -3s'"),
        ("value >= 1e999", "limit 1e999 in threshold expression 'value >= 1e999' is not a finite"),
        ("avg(5) < 1s", "aggregation 'avg' takes no argument"),
        ("avg 3s", "missing comparison operator in threshold expression 'avg 3s'"),
        ("value = 0", "use '==' for equality"),
        ("avg <", "missing numeric limit in threshold expression 'avg <'"),
        ("avg < 3 hours", "unknown unit 'hours'"),
        ("avg < 3s extra", "cannot parse threshold expression 'avg < 3s extra'"),
        ("avg < 3h", "unknown unit 'h' in threshold expression 'avg < 3h'"),
    ],
)
def test_bad_expression_errors_are_precise(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_expression(text)


def test_non_string_expression_is_an_error() -> None:
    with pytest.raises(ExpressionError, match="is a int; expected a string"):
        parse_expression(5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("metric", "text", "message"),
    [
        ("response_time", "rate >= 0.9", "'response_time' is a trend: aggregation 'rate'"),
        ("success", "avg <= 3s", "'success' is a rate: aggregation 'avg' .* use one of rate"),
        ("messages_sent", "value > 1", "is a counter: .* use one of count, rate"),
        ("users", "count >= 1", "is a gauge: .* use one of value, min, max"),
        ("response_time", "p(95) < 8", "needs a unit"),
        ("response_time", "count >= 10s", "write the limit .* as a bare number"),
        ("success", "rate >= 90ms", "not a duration"),
        ("success", "rate >= 1.5", "'success' is a rate, a fraction from 0 to 1: .* 0.9"),
        ("success", "rate > -0.1", "a fraction from 0 to 1"),
    ],
)
def test_aggregation_must_fit_the_metric_kind(metric: str, text: str, message: str) -> None:
    with pytest.raises(ThresholdError, match=message):
        parse_thresholds({metric: [text]})


def test_a_duration_without_unit_suggests_milliseconds_first() -> None:
    # A k6 user's "p(95)<2000" means 2000 ms; the suggestion read "2000s", 33 minutes, a
    # limit that never fails.
    with pytest.raises(ThresholdError) as caught:
        parse_thresholds({"response_time": ["p(95) < 2000"]})
    assert str(caught.value).endswith(
        "needs a unit (us, ms, s, m), e.g. 'p(95) < 2000ms' for milliseconds (what k6 assumes "
        "of a bare number) or 'p(95) < 2000s' for seconds"
    )


def test_unparsable_expression_names_the_metric() -> None:
    with pytest.raises(ExpressionError, match="metric 'success': cannot parse"):
        parse_thresholds({"success": ["rate >> 1"]})


def test_custom_metric_kinds_and_error_counters() -> None:
    ts = parse_thresholds(
        {"queue": ["value < 10"], "errors.timeout": ["count == 0"]},
        kinds={"queue": MetricKind.GAUGE},
    )
    assert [t.metric for t in ts] == ["queue", "errors.timeout"]
    with pytest.raises(ThresholdError, match="'queue' is a gauge"):
        parse_thresholds({"queue": ["p(95) < 1s"]}, kinds={"queue": MetricKind.GAUGE})


# -- evaluation: every aggregation --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "observed"),
    [
        ("avg < 1s", 0.0505),
        ("min < 1s", 0.001),
        ("max < 1s", 0.1),
        ("med < 1s", 0.05),
        ("p(95) < 1s", 0.095),
        ("p(100) < 1s", 0.1),
        ("count > 0", 100.0),
    ],
)
def test_trend_aggregations(text: str, observed: float) -> None:
    outcome = one("response_time", text, LATENCIES)
    assert outcome.observed == pytest.approx(observed)
    assert outcome.status is OutcomeStatus.PASSED


def test_rate_aggregations() -> None:
    rate = Rate(passes=9, total=10)
    assert one("success", "rate >= 0.9", rate).observed == pytest.approx(0.9)
    assert one("success", "passes == 9", rate).status is OutcomeStatus.PASSED
    assert one("success", "total == 10", rate).status is OutcomeStatus.PASSED
    assert one("success", "rate > 0.9", rate).status is OutcomeStatus.FAILED


def test_counter_aggregations() -> None:
    counter = Counter(count=600, per_second=12.5)
    assert one("messages_sent", "count >= 500", counter).observed == 600
    assert one("messages_sent", "rate >= 10", counter).observed == 12.5
    assert one("messages_sent", "rate >= 20", counter).status is OutcomeStatus.FAILED


def test_a_counter_without_a_rate_judges_its_count_only() -> None:
    counter = Counter(count=120, per_second=None)  # a race scenario's operations
    assert one("operations", "count >= 100", counter, "db_race").status is OutcomeStatus.PASSED
    outcome = one("operations", "rate >= 10", counter, "db_race")
    assert outcome.status is OutcomeStatus.NOT_APPLICABLE
    assert outcome.diagnostic == (
        "[db_race] operations rate >= 10: not applicable, the metric has no rate per second"
    )


def test_gauge_aggregations() -> None:
    gauge = Gauge(value=120.0, min=10.0, max=300.0)
    assert one("memory_growth_mb", "value <= 500", gauge).observed == 120.0
    assert one("memory_growth_mb", "min >= 10", gauge).status is OutcomeStatus.PASSED
    assert one("memory_growth_mb", "max < 300", gauge).status is OutcomeStatus.FAILED


@pytest.mark.parametrize(
    ("op", "passes_at_equal", "passes_above", "passes_below"),
    [
        ("<", False, False, True),
        ("<=", True, False, True),
        (">", False, True, False),
        (">=", True, True, False),
        ("==", True, False, False),
        ("!=", False, True, True),
    ],
)
def test_each_operator(
    op: str, passes_at_equal: bool, passes_above: bool, passes_below: bool
) -> None:
    def status(value: float) -> bool:
        outcome = one("violations", f"value {op} 5", Gauge(value, value, value))
        return outcome.status is OutcomeStatus.PASSED

    assert status(5.0) is passes_at_equal
    assert status(6.0) is passes_above
    assert status(4.0) is passes_below


# -- not applicable ------------------------------------------------------------------


def test_absent_metric_is_not_applicable_not_passed() -> None:
    outcomes = evaluate(DEFAULT_THRESHOLDS, {}, "race_billing")
    assert outcomes
    assert {o.status for o in outcomes} == {OutcomeStatus.NOT_APPLICABLE}
    assert all(o.observed is None for o in outcomes)
    verdict = Verdict.of(outcomes)
    assert (verdict.passed, verdict.failed, verdict.not_applicable) == (0, 0, len(outcomes))
    assert outcomes[0].diagnostic == (
        "[race_billing] response_time avg <= 3s: not applicable, "
        "the metric was not recorded in this scenario"
    )


def test_count_of_a_counter_never_recorded_is_not_applicable_and_of_a_zero_one_passes() -> None:
    """As docs/configuration.md says: ``errors count == 0`` on a run that never counted an
    error reads not applicable (squall cannot tell it from a counter the scenario cannot
    record); on a counter recorded at 0 it passes."""
    thresholds = parse_thresholds({"errors": ["count == 0"], "timeouts": ["count == 0"]})
    absent = evaluate(thresholds, {}, "s")
    assert [o.status for o in absent] == [OutcomeStatus.NOT_APPLICABLE] * 2
    zero = evaluate(thresholds, {"errors": ResultCounter("errors", 0, 0.0)}, "s")
    assert [o.status for o in zero] == [OutcomeStatus.PASSED, OutcomeStatus.NOT_APPLICABLE]


def test_empty_trend_and_rate_are_not_applicable_but_count_is_zero() -> None:
    empty = Trend(())
    assert one("response_time", "p(95) < 1s", empty).status is OutcomeStatus.NOT_APPLICABLE
    assert one("response_time", "count >= 1", empty).status is OutcomeStatus.FAILED
    assert one("success", "rate >= 0.9", Rate(0, 0)).status is OutcomeStatus.NOT_APPLICABLE
    assert one("success", "total > 0", Rate(0, 0)).status is OutcomeStatus.FAILED
    assert "no samples" in one("success", "rate >= 0.9", Rate(0, 0)).diagnostic


def test_thresholds_on_a_recorded_trend_with_no_samples_are_not_applicable() -> None:
    fresh = ResultTrend.from_histogram("response_time", LatencyHistogram())
    older = ResultTrend.from_dict({**fresh.to_dict(), "mean": 0.0, "p95": 0.0, "max": 0.0})
    for empty in (fresh, older):
        for expression in ("avg <= 3s", "p(95) <= 8s", "max < 1s", "min > 1s", "med < 1s"):
            outcome = one("response_time", expression, empty, "chat")
            assert (outcome.status, outcome.observed, outcome.shown) == (
                OutcomeStatus.NOT_APPLICABLE,
                None,
                "—",
            )
            assert outcome.diagnostic == (
                f"[chat] response_time {expression}: not applicable, the metric has no samples"
            )
        counted = one("response_time", "count >= 1", empty)
        assert (counted.status, counted.observed) == (OutcomeStatus.FAILED, 0.0)


def test_recorded_metric_of_the_wrong_kind_fails_its_threshold() -> None:
    # Raised, it lost every measurement of the scenario (exit 1, metrics []).
    ts = parse_thresholds(
        {"custom": ["p(95) < 1s"], "other": ["value < 2"]}, kinds={"custom": None, "other": None}
    )
    wrong, right = evaluate(ts, {"custom": Gauge(1, 1, 1), "other": Gauge(1, 1, 1)}, "s")
    assert (wrong.status, wrong.observed, right.status) == (
        OutcomeStatus.FAILED,
        None,
        OutcomeStatus.PASSED,
    )
    assert wrong.diagnostic.startswith(
        "[s] custom p(95) < 1s: FAILED, it cannot judge what was recorded: metric 'custom' is "
        "a gauge: aggregation 'p(95)'"
    )


def test_kind_of_rejects_non_metrics() -> None:
    assert kind_of(LATENCIES) is MetricKind.TREND
    assert kind_of(Rate(1, 1)) is MetricKind.RATE
    assert kind_of(Counter(1, 1.0)) is MetricKind.COUNTER
    assert kind_of(Gauge(1, 1, 1)) is MetricKind.GAUGE
    with pytest.raises(ThresholdError, match="str is not a metric"):
        kind_of("response_time")


# -- diagnostics ---------------------------------------------------------------------


def test_diagnostics_name_scenario_metric_value_with_unit_and_limit() -> None:
    slow = Trend((9.25,) * 10)
    assert one("response_time", "p(95) <= 8s", slow, "golden_path").diagnostic == (
        "[golden_path] response_time p(95) = 9.25s, limit <= 8s: FAILED"
    )
    assert one("response_time", "med < 200ms", LATENCIES, "g").diagnostic == (
        "[g] response_time med = 50ms, limit < 200ms: ok"
    )
    assert one("memory_growth_mb", "value <= 500", Gauge(612.5, 0, 612.5), "soak").diagnostic == (
        "[soak] memory_growth_mb value = 612.5 MB, limit <= 500 MB: FAILED"
    )
    assert one("cpu_avg_percent", "value <= 80", Gauge(81, 0, 90), "x").diagnostic == (
        "[x] cpu_avg_percent value = 81%, limit <= 80%: FAILED"
    )
    assert one("messages_sent", "rate >= 20", Counter(10, 2.5), "x").diagnostic == (
        "[x] messages_sent rate = 2.5/s, limit >= 20/s: FAILED"
    )
    assert one("success", "rate >= 0.9", Rate(2, 3), "x").diagnostic == (
        "[x] success rate = 0.6667, limit >= 0.9: FAILED"
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (42e-6, "42µs"),
        (0.2, "200ms"),
        (8.25, "8.25s"),
        (90, "1.5m"),
        (0.99996, "1s"),
        (0.00099996, "1ms"),
        (0.0009994, "999.4µs"),
        (-0.2, "-200ms"),
        (59.9996, "1m"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_outcome_fields_and_round_trip() -> None:
    outcome = one("response_time", "p(99) <= 15s", LATENCIES, "golden")
    assert (outcome.scenario, outcome.metric, outcome.aggregation) == (
        "golden",
        "response_time",
        "p(99)",
    )
    assert (outcome.operator, outcome.limit, outcome.expression) == ("<=", 15.0, "p(99) <= 15s")
    assert ThresholdOutcome.from_dict(outcome.to_dict()) == outcome
    assert outcome.shown in outcome.diagnostic
    assert outcome.shown.endswith("ms")
    old_report = {k: v for k, v in outcome.to_dict().items() if k != "shown"}
    assert ThresholdOutcome.from_dict(old_report).shown == "—"


def test_shown_carries_the_unit_and_is_a_dash_when_not_applicable() -> None:
    rate = one("success", "rate >= 0.5", None, "golden")
    assert rate.shown == "—"
    assert rate.status is OutcomeStatus.NOT_APPLICABLE


# -- defaults, sets and verdicts -----------------------------------------------------


def test_defaults_are_the_original_numbers() -> None:
    assert DEFAULT_THRESHOLDS.to_dict() == {
        "response_time": ["avg <= 3s", "p(95) <= 8s", "p(99) <= 15s"],
        "success": ["rate >= 0.90"],
        "memory_growth_mb": ["value <= 500"],
        "cpu_avg_percent": ["value <= 80"],
        "ws_connect": ["p(95) <= 5s"],
        "race_conditions_unprevented": ["value <= 5"],
        "violations": ["value == 0"],
        "delivery": ["rate >= 0.80"],
    }
    assert CAPACITY_THRESHOLDS.to_dict() == {
        "users": ["value >= 50"],
        "messages_sent": ["count >= 500"],
        "operations": ["count >= 100"],
    }


def test_merged_replaces_whole_metrics() -> None:
    override = parse_thresholds({"response_time": ["p(95) < 2s"], "success": []})
    merged = DEFAULT_THRESHOLDS.merged(override)
    assert merged.to_dict()["response_time"] == ["p(95) < 2s"]
    assert merged.rules["success"] == ()
    assert len(merged) == len(DEFAULT_THRESHOLDS) - 3 + 1 - 1


def test_verdict_counts_and_exit_code() -> None:
    metrics = {
        "response_time": LATENCIES,
        "success": Rate(5, 10),
        "violations": Gauge(0, 0, 0),
    }
    outcomes = evaluate(DEFAULT_THRESHOLDS, metrics, "s")
    verdict = Verdict.of(outcomes)
    assert (verdict.passed, verdict.failed, verdict.not_applicable) == (4, 1, 5)
    assert verdict.exit_code == 1
    assert str(verdict) == "FAILED: 4 passed, 1 failed, 5 not applicable"
    passing = Verdict.of(o for o in outcomes if o.status is not OutcomeStatus.FAILED)
    assert passing.exit_code == 0


def test_evaluate_accepts_plain_threshold_lists() -> None:
    threshold = Threshold.parse("users", "value >= 50", MetricKind.GAUGE)
    (outcome,) = evaluate([threshold], {"users": Gauge(75, 0, 75)}, "cap")
    assert outcome.status is OutcomeStatus.PASSED
    assert ThresholdSet().to_dict() == {}


def test_a_metric_not_recorded_but_named_like_one_that_was_is_suggested() -> None:
    metrics = {"response_time": Rate(1, 1), "iterations": Rate(1, 1)}
    typo, other = evaluate(
        parse_thresholds({"respnse_time": ["rate >= 0.9"], "operations": ["count >= 1"]}),
        metrics,
        "chat",
    )
    assert typo.status is OutcomeStatus.NOT_APPLICABLE
    assert typo.diagnostic.endswith("not recorded in this scenario (did you mean 'response_time'?)")
    assert "did you mean" not in other.diagnostic  # 'iterations' is not close enough


def test_a_gauges_min_and_max_are_its_own() -> None:
    users = Gauge(value=30.0, min=10.0, max=30.0)
    assert one("users", "min >= 20", users).status is OutcomeStatus.FAILED
    assert one("users", "max >= 20", users).status is OutcomeStatus.PASSED
