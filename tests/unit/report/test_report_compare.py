"""Regression judgement between two runs' figures."""

from __future__ import annotations

import pytest
from report_samples import load_scenario, report

from squall.metrics.histogram import LatencyHistogram
from squall.metrics.result import Rate, Trend
from squall.report.compare import (
    Direction,
    Figure,
    ToleranceError,
    compare,
    direction_of,
    figures_of_report,
    parse_tolerance,
    setting_differences,
)


def test_parse_tolerance() -> None:
    assert parse_tolerance("10%") == pytest.approx(0.10)
    assert parse_tolerance("0.25") == pytest.approx(0.25)
    assert parse_tolerance(0) == 0
    with pytest.raises(ToleranceError, match="not a number"):
        parse_tolerance("ten")
    with pytest.raises(ToleranceError, match="negative"):
        parse_tolerance("-5%")
    with pytest.raises(ToleranceError, match=r"'5' would be 500%: .* write 5% for 5 percent"):
        parse_tolerance("5")
    assert parse_tolerance("150%") == pytest.approx(1.5)
    for unbounded in ("nan", "inf", "inf%", "-inf"):
        with pytest.raises(ToleranceError, match="is not a finite number"):
            parse_tolerance(unbounded)


@pytest.mark.parametrize(
    ("metric", "kind", "stat", "expected"),
    [
        ("response_time", "trend", "p95", Direction.HIGHER_IS_WORSE),
        ("success", "rate", "rate", Direction.LOWER_IS_WORSE),
        ("messages_sent", "counter", "per_second", Direction.LOWER_IS_WORSE),
        ("messages_sent", "counter", "count", Direction.NEUTRAL),
        ("errors.timeout", "counter", "per_second", Direction.HIGHER_IS_WORSE),
        # Events that should not happen: fewer of them is no lost throughput.
        ("timeouts", "counter", "per_second", Direction.HIGHER_IS_WORSE),
        ("seq_gaps", "counter", "per_second", Direction.HIGHER_IS_WORSE),
        ("isolation_leaks", "counter", "per_second", Direction.HIGHER_IS_WORSE),
        ("interrupted_iterations", "counter", "per_second", Direction.HIGHER_IS_WORSE),
        ("dropped_iterations", "counter", "per_second", Direction.HIGHER_IS_WORSE),
        ("iterations", "counter", "per_second", Direction.LOWER_IS_WORSE),
        ("violations", "gauge", "value", Direction.HIGHER_IS_WORSE),
        ("users", "gauge", "value", Direction.LOWER_IS_WORSE),
        # A race scenario's proof that it caught the race it stages: 1 → 0 is the regression.
        ("naive_caught", "gauge", "value", Direction.LOWER_IS_WORSE),
        ("unfenced_caught", "gauge", "value", Direction.LOWER_IS_WORSE),
        # The last context's size describes the run; it judges nothing.
        ("context_chars", "gauge", "value", Direction.NEUTRAL),
        ("context_tokens_peak", "gauge", "value", Direction.NEUTRAL),
        ("queue_depth", "gauge", "value", Direction.HIGHER_IS_WORSE),  # a custom one
    ],
)
def test_directions(metric: str, kind: str, stat: str, expected: Direction) -> None:
    assert direction_of(metric, kind, stat) is expected


def _fig(metric: str, stat: str, value: float, direction: Direction) -> Figure:
    return Figure("s", metric, stat, value, direction)


def test_regressions_beyond_tolerance_only() -> None:
    up, down = Direction.HIGHER_IS_WORSE, Direction.LOWER_IS_WORSE
    before = [
        _fig("response_time", "p95", 0.100, up),
        _fig("ack_time", "p95", 0.100, up),
        _fig("success", "rate", 1.0, down),
        _fig("messages_sent", "per_second", 100.0, down),
        _fig("violations", "value", 0.0, up),
        _fig("gone", "value", 1.0, up),
    ]
    after = [
        _fig("response_time", "p95", 0.120, up),  # +20 %: regression
        _fig("ack_time", "p95", 0.105, up),  # +5 %: within 10 %
        _fig("success", "rate", 0.85, down),  # −15 %: regression
        _fig("messages_sent", "per_second", 120.0, down),  # better
        _fig("violations", "value", 1.0, up),  # 0 → 1: regression
        _fig("new", "value", 1.0, up),
    ]
    result = compare(before, after, tolerance=0.10, before_id="a", after_id="b")
    flagged = {(c.metric, c.stat) for c in result.regressions}
    assert flagged == {("response_time", "p95"), ("success", "rate"), ("violations", "value")}
    gone = next(c for c in result.changes if c.metric == "gone")
    assert gone.after is None
    assert not gone.regression
    change = next(c for c in result.changes if c.metric == "response_time")
    assert change.relative == pytest.approx(0.2)
    assert "+20.0%" in change.describe()


@pytest.mark.parametrize("before_ms", [10, 11, 22, 30, 47, 123, 199])
def test_a_change_of_exactly_the_tolerance_is_not_a_regression(before_ms: int) -> None:
    # 30 ms → 33 ms is +10 % but 3.0000000000000027 ms in floats: flagged "+10.0%
    # REGRESSION" against a 10 % tolerance for about two pairs in five.
    up = Direction.HIGHER_IS_WORSE
    before, after = before_ms / 1000, before_ms * 1.1 / 1000

    def regressions(later: float) -> int:
        figures = ([_fig("response_time", "p95", v, up)] for v in (before, later))
        return len(compare(*figures, tolerance=0.10).regressions)

    assert regressions(after) == 0
    assert regressions(after * 1.001) == 1


def test_latency_noise_floor() -> None:
    up = Direction.HIGHER_IS_WORSE
    result = compare(
        [_fig("response_time", "p99", 0.002, up)], [_fig("response_time", "p99", 0.0029, up)]
    )
    assert result.regressions == ()


def test_identical_reports_do_not_regress_and_slower_ones_do() -> None:
    base = figures_of_report(report(load_scenario()))
    assert compare(base, base).regressions == ()
    slow = report(load_scenario())
    trend = slow["scenarios"][0]["metrics"]["response_time"]
    for key in ("mean", "p50", "p95", "p99"):
        trend[key] *= 2
    regressions = compare(base, figures_of_report(slow)).regressions
    assert {c.stat for c in regressions} == {"mean", "p50", "p95", "p99"}


def test_a_trend_or_rate_without_samples_has_no_figures_to_judge() -> None:
    base = figures_of_report(report(load_scenario()))
    empty = report(load_scenario())
    metrics = empty["scenarios"][0]["metrics"]
    metrics["response_time"] = Trend.from_histogram("response_time", LatencyHistogram()).to_dict()
    metrics["success"] = Rate("success", 0, 0).to_dict()
    after = figures_of_report(empty)
    assert {(f.metric, f.stat) for f in after} == {
        ("messages_sent", "count"),
        ("messages_sent", "per_second"),
        ("users", "value"),
    }
    for first, second in ((base, after), (after, base)):
        comparison = compare(first, second)
        assert comparison.regressions == ()
        gone = {c.stat: c for c in comparison.changes if c.metric in ("response_time", "success")}
        assert set(gone) == {"mean", "p50", "p95", "p99", "rate"}
        assert all(None in (c.before, c.after) for c in gone.values())


def test_setting_differences_name_what_changed_between_the_runs() -> None:
    before = {"adapter": "squall", "scale": 1.0, "processes": 1, "host": "a", "target": "x"}
    after = {"adapter": "echo", "scale": 1.0, "processes": None, "host": "b", "target": "y"}
    assert setting_differences(before, after) == (
        "adapter: squall → echo",
        "processes: 1 → default",
        "host: a → b",
    )  # the target's URL is not compared: squall's own platform gets a new port each run
    assert setting_differences(before, {"scale": 0.5}) == ("scale: 1.0 → 0.5",)
    assert setting_differences(before, before) == ()
    # A baseline that was cut short is named too (its per-second figures cover less).
    assert setting_differences({"interrupted": True}, {"interrupted": False}) == (
        "interrupted: True → False",
    )
    # The platforms squall started, setting by setting ([platform]).
    golden = {"platform": {"model_ttft_ms": "20", "run_concurrency": "64"}}
    slow = {"platform": {"model_ttft_ms": "400", "run_concurrency": "64", "faults": "x"}}
    assert setting_differences(golden, slow) == (
        "platform.faults: default → x",
        "platform.model_ttft_ms: 20 → 400",
    )
    assert setting_differences(golden, {"platform": None}) == ()  # none started: no pairs


def test_errors_recorded_in_one_run_only_are_judged_from_zero() -> None:
    # A counter of errors or timeouts exists from its first one: a clean run has none.
    up, down = Direction.HIGHER_IS_WORSE, Direction.LOWER_IS_WORSE
    clean = [_fig("success", "rate", 1.0, down)]
    timing_out = [
        _fig("success", "rate", 0.97, down),  # within the tolerance
        _fig("timeouts", "per_second", 23.2, up),
        _fig("timeouts", "count", 70.0, Direction.NEUTRAL),
        _fig("errors.protocol", "per_second", 0.5, up),
    ]
    worse = compare(clean, timing_out, tolerance=0.10)
    assert {(c.metric, c.stat) for c in worse.regressions} == {
        ("timeouts", "per_second"),
        ("errors.protocol", "per_second"),
    }
    timeouts = next(c for c in worse.changes if (c.metric, c.stat) == ("timeouts", "count"))
    assert (timeouts.before, timeouts.after) == (0.0, 70.0)
    assert compare(timing_out, clean).regressions == ()  # the other way, it is better
    # A scenario only one run has is not judged from zero.
    other = [Figure("t", "timeouts", "per_second", 5.0, up), *clean]
    assert compare(clean, other).regressions == ()


def test_runs_that_share_no_figure_compare_nothing() -> None:
    down = Direction.LOWER_IS_WORSE
    one = [Figure("redis_locks", "unfenced_caught", "value", 1.0, down)]
    other = [Figure("websocket_concurrency", "success", "rate", 1.0, down)]
    assert compare(one, other).compared == 0
    assert compare(one, one).compared == 1


def test_two_runs_against_different_services_are_set_up_differently() -> None:
    # Runs against ws://…:47301 and ws://…:47302 were compared as one service's, with no
    # word; two runs each against the platform squall started (a port of its own) are not.
    one = {"target": "ws://127.0.0.1:47301/", "platform": None}
    other = {"target": "ws://127.0.0.1:47302/", "platform": None}
    assert setting_differences(one, other) == (
        "target: ws://127.0.0.1:47301/ → ws://127.0.0.1:47302/",
    )
    ours = {"target": "ws://127.0.0.1:40001/v1/ws", "platform": {"workers": "2"}}
    again = {"target": "ws://127.0.0.1:40555/v1/ws", "platform": {"workers": "2"}}
    assert setting_differences(ours, again) == ()
    assert setting_differences(ours, one) == (
        "target: the platform squall started → ws://127.0.0.1:47301/",
    )
    # Runs that talked to no target, and reports older than the platform's record: no word.
    assert setting_differences({"target": None, "platform": None}, dict(one)) == (
        "target: none → ws://127.0.0.1:47301/",
    )
    assert setting_differences({"target": "ws://a/"}, {"target": "ws://b/"}) == ()


@pytest.mark.parametrize(
    ("metric", "stat", "before", "after", "tolerance", "direction"),
    [
        ("success", "rate", 0.50, 0.44, 0.10, Direction.LOWER_IS_WORSE),  # 12 % worse
        ("response_time", "p95", 1.0, 1.10005, 0.10, Direction.HIGHER_IS_WORSE),  # just over
        # The 1 ms noise floor is for durations only: a rate has none.
        ("success", "rate", 1.0, 0.9995, 0.0, Direction.LOWER_IS_WORSE),
    ],
)
def test_a_change_just_past_the_tolerance_is_a_regression(
    metric: str, stat: str, before: float, after: float, tolerance: float, direction: Direction
) -> None:
    old, new = (
        Figure("s", metric, stat, before, direction),
        Figure("s", metric, stat, after, direction),
    )
    assert [c.metric for c in compare([old], [new], tolerance=tolerance).regressions] == [metric]


def test_a_tolerance_of_one_is_refused_as_likely_meant_as_a_percentage() -> None:
    with pytest.raises(ToleranceError):
        parse_tolerance("1")


def test_scenario_parameters_set_differently_are_named() -> None:
    # users=10 against users=4 read as seven regressions, with no word of the change.
    before = {"params": {"long_conversation": {"users": 10}}}
    after = {"params": {"long_conversation": {"users": 4, "messages": 5}}}
    assert setting_differences(before, after) == (
        "long_conversation.messages: default → 5",
        "long_conversation.users: 10 → 4",
    )
    assert setting_differences(after, after) == ()
    assert setting_differences({}, after) == ()  # a report older than the record: no word
