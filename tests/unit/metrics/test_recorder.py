"""The recorder and the exact merge of per-process states."""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Callable

import pytest

from squall.metrics.histogram import LatencyHistogram
from squall.metrics.recorder import (
    MAX_ERROR_KIND_CHARS,
    MAX_ERROR_KINDS,
    MAX_METRIC_NAMES,
    OTHER_KINDS,
    PENDING_LIMIT,
    Recorder,
    RecorderState,
    error_summaries,
    merge_states,
    to_metrics,
)
from squall.metrics.result import Counter, Gauge, Rate, Trend
from squall.metrics.thresholds import OutcomeStatus, evaluate, parse_thresholds


def test_merge_adds_counts_rates_and_histograms_exactly() -> None:
    first, second = Recorder(), Recorder()
    for value in (0.001, 0.002, 0.003):
        first.trend("response_time", value)
    second.trend("response_time", 1.0)
    first.count("messages_sent", 3)
    second.count("messages_sent")
    first.rate("success", True)
    second.rate("success", False)
    first.gauge("users", 5)
    first.gauge("users", 2)
    second.gauge("users", 4)
    merged = merge_states([first.state(), second.state()])
    metrics = to_metrics(merged, duration_s=2.0)
    assert metrics["messages_sent"] == Counter("messages_sent", 4, 2.0)
    assert metrics["success"] == Rate("success", 1, 2)
    assert metrics["users"] == Gauge("users", 4.0, 2.0, 5.0)
    trend = metrics["response_time"]
    assert isinstance(trend, Trend)
    union = LatencyHistogram.of([0.001, 0.002, 0.003, 1.0])
    assert trend.encoded == union.encode()


def test_errors_are_counted_by_kind_with_few_samples() -> None:
    recorder = Recorder()
    for n in range(5):
        recorder.error("timeout", f"late {n}")
    recorder.error("closed", "code 1011")
    state = merge_states([recorder.state(), recorder.state()])
    assert state.counters["errors"] == 12
    summaries = error_summaries(state)
    assert [(s.kind, s.count) for s in summaries] == [("timeout", 10), ("closed", 2)]
    assert summaries[0].samples == ("late 0", "late 1", "late 2")


def test_error_samples_are_the_first_that_differ() -> None:
    first, second = Recorder(), Recorder()
    for _ in range(4):
        first.error("KeyError", "'user' (at my.py:3 in chat)")
    first.error("KeyError", "'thread' (at my.py:9 in chat)")
    second.error("KeyError", "'user' (at my.py:3 in chat)")
    second.error("KeyError", "'room' (at my.py:12 in chat)")
    (summary,) = error_summaries(merge_states([first.state(), second.state()]))
    assert summary.count == 7
    assert summary.samples == (
        "'user' (at my.py:3 in chat)",
        "'thread' (at my.py:9 in chat)",
        "'room' (at my.py:12 in chat)",
    )


def test_take_interval_reports_deltas() -> None:
    recorder = Recorder()
    recorder.count("messages_sent", 3)
    recorder.trend("round_trip", 0.01)
    first = recorder.take_interval()
    assert (first.sent, first.received, first.errors) == (3, 0, 0)
    assert first.latency is not None
    assert first.latency.unpack().count == 1
    recorder.count("messages_sent", 2)
    second = recorder.take_interval()
    assert second.sent == 2
    assert second.latency is None


def test_state_round_trips_through_json() -> None:
    recorder = Recorder()
    recorder.trend("ws_connect", 0.004)
    recorder.rate("delivery", True)
    recorder.gauge("violations", 0)
    recorder.error("connect", "refused")
    state = recorder.state()
    assert RecorderState.from_dict(json.loads(json.dumps(state.to_dict()))) == state


def lognormal(seed: int, n: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.lognormvariate(-7, 1.2) for _ in range(n)]


def test_buffered_trend_folds_into_the_histogram_direct_recording_gives() -> None:
    seconds = lognormal(1, PENDING_LIMIT + 1234)  # one fold at the limit, one on reading
    recorder = Recorder()
    for value in seconds[:100]:
        recorder.trend("iteration_time", value)
    partial = recorder.histogram("iteration_time")
    assert partial is not None
    assert partial.encode() == LatencyHistogram.of(seconds[:100]).encode()
    for value in seconds[100:]:
        recorder.trend("iteration_time", value)
    direct = LatencyHistogram.of(seconds)
    assert recorder.state().trends["iteration_time"] == direct.pack()
    merged = merge_states([recorder.state(), recorder.state()])
    twice = direct.copy()
    twice.merge(direct)
    assert merged.trends["iteration_time"] == twice.pack()


def test_the_series_follows_response_time_once_one_was_recorded() -> None:
    # A second with round trips and no response time showed the round trips' latency:
    # 500 ms in a series whose response times never passed 1 ms.
    recorder = Recorder()
    recorder.trend("round_trip", 0.5)
    assert recorder.take_interval().latency == LatencyHistogram.of([0.5]).pack()  # none yet
    recorder.trend("response_time", 0.001)
    recorder.trend("round_trip", 0.5)
    assert recorder.take_interval().latency == LatencyHistogram.of([0.001]).pack()
    recorder.trend("round_trip", 0.5)
    assert recorder.take_interval().latency is None


def test_interval_latency_holds_exactly_the_values_since_the_last_interval() -> None:
    recorder = Recorder()
    first = lognormal(2, PENDING_LIMIT + 10)  # crosses a fold inside the interval
    for value in first:
        recorder.trend("round_trip", value)
    interval = recorder.take_interval()
    assert interval.latency == LatencyHistogram.of(first).pack()
    second = lognormal(3, 50)
    for value in second:
        recorder.trend("round_trip", value)
    assert recorder.take_interval().latency == LatencyHistogram.of(second).pack()
    assert recorder.take_interval().latency is None
    assert recorder.state().trends["round_trip"] == LatencyHistogram.of(first + second).pack()


def test_trend_clamps_like_the_histogram_and_rejects_bad_durations_at_once() -> None:
    recorder = Recorder()
    for value in (0.0, 1e-9, 0.0005, 5_000.0, math.inf):
        recorder.trend("ack_time", value)
    expected = LatencyHistogram.of([0.0, 1e-9, 0.0005, 5_000.0, 3_600.0])
    assert recorder.state().trends["ack_time"] == expected.pack()
    for bad in (-0.001, math.nan):
        with pytest.raises(ValueError, match="non-negative"):
            recorder.trend("ack_time", bad)
    assert recorder.histogram("ack_time") is not None
    assert recorder.histogram("never_recorded") is None


def test_cells_are_the_counters_and_rates_a_hot_path_bumps() -> None:
    recorder = Recorder()
    sent = recorder.counter_cell("messages_sent")
    assert recorder.counter_cell("messages_sent") is sent
    sent[0] += 2
    recorder.count("messages_sent")
    success = recorder.rate_cell("success")
    success[0] += 2  # two passes
    recorder.rate("success", False)
    assert success == [2, 1]  # [passes, failures]
    assert recorder.counter("messages_sent") == 3
    assert recorder.take_interval().sent == 3
    state = recorder.state()
    assert state.counters == {"messages_sent": 3}
    assert state.rates == {"success": (2, 3)}


def test_trend_buffer_folds_on_every_interval_and_clamps_at_the_fold() -> None:
    recorder = Recorder()
    buffer = recorder.trend_buffer("iteration_time")
    assert recorder.buffers["iteration_time"] is buffer
    values = [*lognormal(4, 100), 0.0, 5_000.0]
    buffer.extend(values)
    recorder.trend("iteration_time", 0.25)
    recorder.take_interval()
    assert len(buffer) == 0  # folded with the interval, not only when read
    expected = LatencyHistogram.of([*values[:-1], 3_600.0, 0.25])
    assert recorder.state().trends["iteration_time"] == expected.pack()


def test_an_infinite_duration_in_a_trend_buffer_is_clamped_too() -> None:
    # round(inf) raised OverflowError at the fold, as the trend was read.
    recorder = Recorder()
    recorder.trend_buffer("iteration_time").extend([0.5, math.inf])
    expected = LatencyHistogram.of([0.5, 3_600.0])
    assert recorder.state().trends["iteration_time"] == expected.pack()
    recorder.trend_buffer("iteration_time").append(math.nan)
    with pytest.raises(ValueError, match="not a non-negative number of seconds"):
        recorder.state()


def test_merged_workers_keep_the_exact_extremes() -> None:
    # 8,000..8,003 µs share a slot, 2,500,000 µs a slot of 2,048: read by their slots,
    # they would be 8.003 ms and 2.502047 s.
    first, second = Recorder(), Recorder()
    for _ in range(50):
        first.trend("response_time", 0.008)
    second.trend("response_time", 0.008)
    second.trend("ws_connect", 2.5)
    # Each state crosses to the parent as its dictionary, as a worker's report does.
    states = [
        RecorderState.from_dict(json.loads(json.dumps(r.state().to_dict())))
        for r in (first, second)
    ]
    metrics = to_metrics(merge_states(states), duration_s=1.0)
    response, connect = metrics["response_time"], metrics["ws_connect"]
    assert isinstance(response, Trend)
    assert isinstance(connect, Trend)
    assert (response.count, response.min, response.max) == (51, 0.008, 0.008)
    assert (response.mean, response.p50, response.p99, response.p999) == (0.008,) * 4
    assert (connect.min, connect.max, connect.p99) == (2.5, 2.5, 2.5)
    thresholds = parse_thresholds(
        {
            "response_time": ["max <= 8ms", "p(99) <= 8ms", "avg <= 8ms"],
            "ws_connect": ["max <= 2.5s"],
        }
    )
    outcomes = evaluate(thresholds, metrics, "s")
    assert [o.status for o in outcomes] == [OutcomeStatus.PASSED] * 4


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        (lambda r: r.trend("latency", 0.1), lambda r: r.count("latency"), "a trend"),
        (lambda r: r.count("orders"), lambda r: r.rate("orders", False), "a counter"),
        (lambda r: r.rate("ok", True), lambda r: r.trend_buffer("ok"), "a rate"),
        (lambda r: r.gauge("depth", 4.0), lambda r: r.counter_cell("depth"), "a gauge"),
    ],
)
def test_a_name_taken_by_another_kind_is_refused(
    first: Callable[[Recorder], object], second: Callable[[Recorder], object], message: str
) -> None:
    # Merged into one result, the last kind written replaced the other without a word: a
    # behaviour's count("response_time") took the place of the latencies.
    recorder = Recorder()
    first(recorder)
    with pytest.raises(ValueError, match=f"is {message} already: a .* cannot take its name"):
        second(recorder)


@pytest.mark.parametrize(
    ("write", "taken"),
    [
        (lambda r: r.count("response_time"), "squall's own trend: a counter"),
        (lambda r: r.gauge("iterations", 1.0), "squall's own counter: a gauge"),
        (lambda r: r.trend("errors", 0.1), "squall's own counter: a trend"),
        (lambda r: r.gauge("interrupted_iterations", 0.0), "squall's own counter: a gauge"),
        (lambda r: r.trend("users", 0.1), "squall's own gauge: a trend"),
        (lambda r: r.count("success"), "squall's own rate: a counter"),
        (lambda r: r.gauge("errors.mine", 1.0), "squall's own counter: a gauge"),
    ],
)
def test_squalls_own_metric_names_are_refused_as_another_kind_before_squall_writes_them(
    write: Callable[[Recorder], object], taken: str
) -> None:
    # Taken first by a behaviour (gauge("iterations") in the open model), the engine's own
    # write failed later: users died, the run ended early, or everything measured was lost.
    with pytest.raises(ValueError, match=f"is {re.escape(taken)} cannot take its name"):
        write(Recorder())


def test_a_metric_name_or_error_that_is_no_string_is_refused_at_once() -> None:
    # count(123) ran the whole load, then crashed the summary (every result lost).
    recorder = Recorder()
    with pytest.raises(ValueError, match=r"metric name 123 is a int: name it with a str"):
        recorder.count(123)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"give the kind and the message as str"):
        recorder.error("x", 12345)  # type: ignore[arg-type]
    assert recorder.counter("errors") == 0  # nothing counted for a refused call


def test_counts_and_gauges_that_measure_nothing_are_refused() -> None:
    # A negative or fractional count made a counter of -20.0; a NaN gauge kept NaN as its
    # lowest and highest value for good.
    recorder = Recorder()
    for bad in (-3, 0.5, True):
        with pytest.raises(ValueError, match="a counter grows by a whole number >= 0"):
            recorder.count("x", bad)  # type: ignore[arg-type]
    for bad_value in (math.nan, math.inf):
        with pytest.raises(ValueError, match="a gauge takes a finite number"):
            recorder.gauge("g", bad_value)
    recorder.count("x", 0)
    recorder.gauge("g", 3)
    assert (recorder.counter("x"), recorder.state().gauges["g"]) == (0, (3, 3, 3))


def test_error_kinds_are_bounded_in_number_and_length() -> None:
    # A target controls server.<code>: a new code per message made 601 kinds, a 9.7 MB
    # report and a summary line that took minutes to print.
    recorder = Recorder()
    for number in range(MAX_ERROR_KINDS + 50):
        recorder.error(f"server.code{number}", "refused")
    recorder.error("server.code0", "refused again")
    recorder.error("server." + "x" * 500, "long")
    state = recorder.state()
    kinds = [name for name in state.counters if name.startswith("errors.")]
    assert len(kinds) == MAX_ERROR_KINDS + 1
    assert state.counters["errors.server.code0"] == 2
    assert state.counters[f"errors.{OTHER_KINDS}"] == 51
    assert state.counters["errors"] == MAX_ERROR_KINDS + 52
    assert state.error_samples[OTHER_KINDS][0] == f"server.code{MAX_ERROR_KINDS}: refused"
    assert all(len(name) <= len("errors.") + MAX_ERROR_KIND_CHARS for name in kinds)


def test_a_long_error_kind_is_cut_and_named_in_its_sample() -> None:
    recorder = Recorder()
    long_kind = "server." + "y" * 300
    recorder.error(long_kind, "no")
    state = recorder.state()
    (kind,) = state.error_samples
    assert kind == long_kind[: MAX_ERROR_KIND_CHARS - 1] + "…"
    assert state.error_samples[kind] == [f"{long_kind}: no"[:500]]


def test_a_threshold_on_one_error_kind_fails_once_kinds_were_folded() -> None:
    # 100 junk codes first: the one a threshold guards went to other_kinds, and its
    # `count == 0` read not applicable (the run passed); merged with a process where it
    # stayed below the bound, `count < 5` read its count short and passed.
    flooded = Recorder()
    for number in range(MAX_ERROR_KINDS):
        flooded.error(f"server.junk{number}", "junk")
    for _ in range(9):
        flooded.error("server.queue_full", "full")
    calm = Recorder()
    calm.error("server.queue_full", "full")
    for states in ([flooded.state()], [flooded.state(), calm.state()]):
        metrics = to_metrics(merge_states(states), 1.0)
        rules = parse_thresholds(
            {
                "errors.server.queue_full": ["count == 0", "count < 5"],
                "errors": ["count > 0"],
                f"errors.{OTHER_KINDS}": ["count >= 0"],
            }
        )
        outcomes = evaluate(rules, metrics, "chat")
        statuses = [(o.metric, o.expression, o.status) for o in outcomes]
        assert statuses == [
            ("errors.server.queue_full", "count == 0", OutcomeStatus.FAILED),
            ("errors.server.queue_full", "count < 5", OutcomeStatus.FAILED),
            ("errors", "count > 0", OutcomeStatus.PASSED),
            (f"errors.{OTHER_KINDS}", "count >= 0", OutcomeStatus.PASSED),
        ]
        assert "cannot be judged: 9 error(s) of kinds past the first 100" in outcomes[0].diagnostic
    calm_only = evaluate(
        parse_thresholds({"errors.server.queue_full": ["count < 5"]}),
        to_metrics(merge_states([calm.state()]), 1.0),
        "chat",
    )
    assert [o.status for o in calm_only] == [OutcomeStatus.PASSED]


def test_a_name_recorded_as_two_kinds_by_two_processes_is_left_out_and_named() -> None:
    # Each process refuses a clash of its own; merged, the counter replaced the trend and
    # its 48 samples were gone without a word.
    counted, timed = Recorder(), Recorder()
    counted.count("dual", 48)
    timed.trend("dual", 0.01)
    timed.count("kept")
    merged = merge_states([counted.state(), timed.state()])
    assert "dual" not in merged.counters
    assert "dual" not in merged.trends
    assert merged.counters["kept"] == 1
    assert merged.counters["errors.scenario"] == 1
    assert merged.error_samples["scenario"] == [
        "metric 'dual' was recorded as a trend and a counter by different worker processes: "
        "a name holds one kind, so it is left out of the result; name each kind otherwise"
    ]


def test_metric_names_past_the_bound_are_refused_squalls_own_still_taken() -> None:
    # A name per iteration: a one-second run took 47 s and 2.6 GB.
    recorder = Recorder()
    for number in range(MAX_METRIC_NAMES):
        recorder.count(f"m{number}")
    with pytest.raises(ValueError, match=r"past the limit of 1000: a name made per iteration"):
        recorder.trend("one_more", 0.1)
    recorder.count("m0")  # a name it holds is still counted
    recorder.count("interrupted_iterations")  # squall's own names are never refused
    recorder.error("late", "still counted")
    assert recorder.counter("errors.late") == 1


def test_merged_gauges_keep_the_highest_value_of_the_processes() -> None:
    # One process's memory growth of 900 MB and another's of 100: the run's is 900, and the
    # default threshold (value <= 500) fails it.
    from squall.metrics.thresholds import DEFAULT_THRESHOLDS, OutcomeStatus, evaluate

    high = RecorderState(gauges={"memory_growth_mb": (900.0, 0.0, 900.0)})
    low = RecorderState(gauges={"memory_growth_mb": (100.0, 0.0, 100.0)})
    for order in ([high, low], [low, high]):
        metrics = to_metrics(merge_states(order), 10.0)
        assert metrics["memory_growth_mb"].value == 900.0
        (judged,) = [
            o for o in evaluate(DEFAULT_THRESHOLDS, metrics, "s") if o.metric == "memory_growth_mb"
        ]
        assert judged.status is OutcomeStatus.FAILED


def test_each_interval_counts_its_own_errors() -> None:
    recorder = Recorder()
    recorder.count("errors", 3)
    assert recorder.take_interval().errors == 3
    assert recorder.take_interval().errors == 0
