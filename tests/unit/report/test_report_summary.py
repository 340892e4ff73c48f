"""The per-scenario lines of the terminal summary."""

from __future__ import annotations

import io

from rich.console import Console

from squall.metrics.histogram import LatencyHistogram
from squall.metrics.result import Counter, Gauge, Rate, Trend
from squall.metrics.thresholds import evaluate, parse_thresholds
from squall.report.summary import (
    SAMPLE_CHARS,
    error_counts,
    first_error_samples,
    print_scenario,
    print_summary,
)
from squall.suite import ScenarioOutcome, SuiteReport


def test_error_counts_lists_kinds_that_counted_most_first() -> None:
    metrics = {
        "errors": Counter("errors", 7, 0.0),
        "errors.closed": Counter("errors.closed", 2, 0.0),
        "errors.connect": Counter("errors.connect", 5, 0.0),
        "errors.protocol": Counter("errors.protocol", 0, 0.0),
        "users": Gauge("users", 3.0, 0.0, 3.0),
    }
    assert error_counts(metrics) == [("connect", 5), ("closed", 2)]


def test_scenario_line_shows_notes_and_errors() -> None:
    outcome = ScenarioOutcome(
        name="websocket_concurrency",
        metrics={"errors.server.rate_limited": Counter("errors.server.rate_limited", 4, 0.0)},
        outcomes=[],
        notes=["target memory: [brackets] kept"],
        duration_s=1.25,
    )
    out = io.StringIO()
    print_scenario(Console(file=out, width=200, color_system=None), outcome)
    text = out.getvalue()
    assert "websocket_concurrency passed in 1.2 s" in text
    assert "! target memory: [brackets] kept" in text
    assert "errors: server.rate_limited 4" in text


def test_the_error_line_names_the_ten_commonest_kinds_and_counts_the_rest() -> None:
    metrics = {
        f"errors.server.c{n:02}": Counter(f"errors.server.c{n:02}", 100 - n, 0.0) for n in range(25)
    }
    outcome = ScenarioOutcome(
        name="websocket_concurrency", metrics=metrics, outcomes=[], duration_s=1.0
    )
    out = io.StringIO()
    print_scenario(Console(file=out, width=200, color_system=None), outcome)
    (line,) = [line for line in out.getvalue().splitlines() if "errors:" in line]
    assert line.startswith("  errors: server.c00 100, server.c01 99, ")
    assert line.endswith("server.c09 91 and 15 more kinds (report.json)")


def test_notes_and_error_lines_are_not_broken_at_the_console_width() -> None:
    note = "target memory: " + "n" * 150
    sample = "ws://h/v1/ws: " + "s" * 150
    outcome = ScenarioOutcome(
        name="websocket_concurrency",
        metrics={"errors.closed": Counter("errors.closed", 1, 0.0)},
        outcomes=[],
        notes=[note],
        result={"errors": [{"kind": "closed", "count": 1, "samples": [sample]}]},
        duration_s=1.0,
    )
    out = io.StringIO()
    print_scenario(Console(file=out, width=60, color_system=None), outcome)
    lines = out.getvalue().splitlines()
    assert f"  ! {note}" in lines
    assert f"    closed: {sample}" in lines


def test_scenario_line_shows_a_sample_message_of_each_frequent_error_kind() -> None:
    rejected = "ws://h/v1/ws: connection closed (code 4401, reason 'token rejected: [bad]')"
    outcome = ScenarioOutcome(
        name="websocket_concurrency",
        metrics={
            "errors.closed": Counter("errors.closed", 8, 0.0),
            "errors.connect": Counter("errors.connect", 1, 0.0),
        },
        outcomes=[],
        result={
            "errors": [
                {"kind": "connect", "count": 1, "samples": ["x" * 500]},
                {"kind": "closed", "count": 8, "samples": [rejected, "another"]},
            ]
        },
        duration_s=3.4,
    )
    out = io.StringIO()
    print_scenario(Console(file=out, width=400, color_system=None), outcome)
    lines = out.getvalue().splitlines()
    assert lines[1] == "  errors: closed 8, connect 1"
    assert lines[2] == f"    closed: {rejected}"  # the most frequent first, markup kept
    assert lines[3] == "    connect: " + "x" * (SAMPLE_CHARS - 1) + "…"


def test_first_error_samples_reads_only_well_formed_entries() -> None:
    assert first_error_samples(None) == {}
    assert first_error_samples({"errors": "not a list"}) == {}
    result = {"errors": [{"kind": "closed", "samples": []}, 3, {"kind": "x", "samples": ["m"]}]}
    assert first_error_samples(result) == {"x": "m"}


def test_scenario_line_shows_timeouts_when_there_were_any() -> None:
    def printed(timeouts: int) -> str:
        outcome = ScenarioOutcome(
            name="websocket_concurrency",
            metrics={"timeouts": Counter("timeouts", timeouts, 0.0)},
            outcomes=[],
            duration_s=1.0,
        )
        out = io.StringIO()
        print_scenario(Console(file=out, width=200, color_system=None), outcome)
        return out.getvalue()

    assert "  timeouts: 16 (no answer within the timeout)" in printed(16)
    assert "timeouts" not in printed(0)


def test_a_scenario_left_out_says_not_run_with_its_note() -> None:
    outcome = ScenarioOutcome(
        name="platform_races",
        metrics={},
        outcomes=[],
        notes=["not run: it drives the reference platform's own protocol"],
        ran=False,
    )
    out = io.StringIO()
    print_scenario(Console(file=out, width=200, color_system=None), outcome)
    text = out.getvalue()
    assert text.startswith("platform_races not run\n")
    assert "passed" not in text
    assert "! not run: it drives the reference platform's own protocol" in text


def test_names_codes_and_messages_from_outside_print_as_given_and_inert() -> None:
    # A scenario named with brackets, an error code a target chose ("[/]" is a closing
    # markup tag, "\x1b[2J" clears a terminal) and a threshold on it.
    code = "server.[/]\x1b[2J"
    metrics = {f"errors.{code}": Counter(f"errors.{code}", 2, 0.0)}
    thresholds = parse_thresholds({f"errors.{code}": ["count == 0"]})
    outcome = ScenarioOutcome(
        name="chat[ws]",
        metrics=dict(metrics),
        outcomes=evaluate(thresholds, metrics, "chat[ws]"),
        result={"errors": [{"kind": code, "count": 2, "samples": ["bad \x1b]0;title\x07 [red]"]}]},
        notes=["target said \x1b[31m[bold]hi"],
        table=(("col[x]",), [("\x1b[1mcell[/]",)]),
        duration_s=1.0,
    )
    out = io.StringIO()
    console = Console(file=out, width=300, color_system=None)
    print_scenario(console, outcome)
    print_summary(console, SuiteReport("r1", 0.0, [outcome]))
    text = out.getvalue()
    assert "\x1b" not in text
    assert "\x07" not in text
    assert text.startswith("chat[ws] FAILED in 1.0 s\n")
    assert "! target said \\x1b[31m[bold]hi" in text
    assert "errors: server.[/]\\x1b[2J 2" in text
    assert "server.[/]\\x1b[2J: bad \\x1b]0;title\\x07 [red]" in text
    assert "col[x]" in text
    assert "\\x1b[1mcell[/]" in text
    assert "│ chat[ws] │ errors.server.[/]\\x1b[2J │ count == 0 │" in text


def test_failed_tests_turn_a_verdict_whose_thresholds_held_into_failed() -> None:
    # squall test exits 1 when pytest reports a failed test; the summary said "PASSED".
    outcomes = evaluate(
        parse_thresholds({"ops": ["count >= 1"]}), {"ops": Counter("ops", 3, 1.0)}, "chat"
    )
    report = SuiteReport(
        "20260101-000000-eeee",
        1_000.0,
        [ScenarioOutcome(name="chat", metrics={}, outcomes=outcomes, duration_s=1.0)],
        finished_at=1_001.0,
    )
    for tests_failed, verdict in [
        (False, "PASSED: 1 passed, 0 failed, 0 not applicable"),
        (
            True,
            "FAILED: pytest reported failed tests (above); the thresholds shown held "
            "(1 passed, 0 failed, 0 not applicable)",
        ),
    ]:
        out = io.StringIO()
        console = Console(file=out, width=200, color_system=None)
        print_summary(console, report, tests_failed=tests_failed)
        assert out.getvalue().rstrip().endswith(verdict)
        assert ("PASSED" in out.getvalue()) is not tests_failed


def test_an_interrupted_run_whose_thresholds_held_reads_interrupted_not_passed() -> None:
    # "PASSED: 0 passed" for a run stopped before anything was judged.
    for scenarios, verdict in [
        ([], "INTERRUPTED: 0 passed, 0 failed, 0 not applicable"),
        (
            [ScenarioOutcome(name="chat", metrics={}, outcomes=[], duration_s=1.0)],
            "INTERRUPTED: 0 passed, 0 failed, 0 not applicable",
        ),
    ]:
        report = SuiteReport("20260101-000000-ffff", 1_000.0, scenarios, interrupted=True)
        out = io.StringIO()
        print_summary(Console(file=out, width=200, color_system=None), report)
        assert out.getvalue().rstrip().endswith(verdict)
        assert "PASSED" not in out.getvalue()


def test_the_summary_shows_a_threshold_on_a_trend_with_no_samples_as_not_applicable() -> None:
    timed = Trend.from_histogram("response_time", LatencyHistogram.of([0.05, 0.07]))
    empty = Trend.from_histogram("response_time", LatencyHistogram())
    thresholds = parse_thresholds(
        {"response_time": ["p(95) <= 8s"], "violations": ["value == 0"], "success": ["rate > 0"]}
    )
    scenarios = []
    for name, metrics in (
        ("timed", {"response_time": timed}),
        ("untimed", {"response_time": empty, "success": Rate("success", 0, 0)}),
    ):
        outcomes = evaluate(thresholds, metrics, name)
        scenarios.append(ScenarioOutcome(name, dict(metrics), outcomes, duration_s=1.0))
    out = io.StringIO()
    print_summary(Console(file=out, width=200, color_system=None), SuiteReport("r", 0.0, scenarios))
    rows = [" ".join(line.strip("│ ").split()) for line in out.getvalue().splitlines()]
    assert "timed │ response_time │ p(95) <= 8s │ 70ms │ pass" in rows
    assert "untimed │ response_time │ p(95) <= 8s │ no samples │ n/a" in rows
    assert "untimed │ success │ rate > 0 │ no samples │ n/a" in rows
    assert not [row for row in rows if "violations │" in row]
    # The note counts those left out of the table: on a metric the scenario does not record.
    assert "3 threshold(s) not applicable: their metric is not recorded by that scenario" in (
        " ".join(out.getvalue().split())
    )
    assert rows[-1] == "PASSED: 1 passed, 0 failed, 5 not applicable"


def test_a_run_in_which_no_scenario_ran_reads_nothing_ran_not_passed() -> None:
    # `-s platform_races` against another adapter: "PASSED: 0 passed, 0 failed, 9 n/a".
    not_run = ScenarioOutcome(
        name="platform_races",
        metrics={},
        outcomes=[],
        notes=["not run: platform_races drives the reference platform's own protocol"],
        duration_s=0.0,
        ran=False,
    )
    out = io.StringIO()
    print_summary(Console(file=out, width=200, color_system=None), SuiteReport("r", 0.0, [not_run]))
    assert (
        out.getvalue()
        .rstrip()
        .endswith(
            "NOTHING RAN: none of the selected scenarios ran (the notes above say why); "
            "0 passed, 0 failed, 0 not applicable"
        )
    )
    assert "PASSED" not in out.getvalue()


def test_an_error_kind_a_target_sent_cannot_print_a_line_of_its_own() -> None:
    # An error code "\nPASSED: 9 passed, ..." printed a line that read like squall's verdict.
    kind = "server.\nPASSED: 9 passed, 0 failed, 0 not applicable\nresults: /etc/passwd"
    outcome = ScenarioOutcome(
        name="websocket_concurrency",
        metrics={f"errors.{kind}": Counter(f"errors.{kind}", 3, 0.0)},
        outcomes=[],
        result={"errors": [{"kind": kind, "count": 3, "samples": ["no\nPASSED"]}]},
        duration_s=1.0,
    )
    out = io.StringIO()
    print_scenario(Console(file=out, width=200, color_system=None), outcome)
    lines = out.getvalue().splitlines()
    assert not [line for line in lines if line.startswith(("PASSED", "results:"))], lines
    assert "  errors: server.\\nPASSED: 9 passed, 0 failed, 0 not applicable\\nresults: " in (
        out.getvalue()
    )
    assert lines[-1].endswith(": no\\nPASSED")


def test_a_scenario_cut_short_by_ctrl_c_reads_interrupted_not_passed() -> None:
    # A target that never answered, stopped with Ctrl-C: "passed in 1.2 s".
    for reason, line in [
        ("sigint", "interrupted (no threshold failed on its partial results) in 1.2 s"),
        ("deadline", "passed in 1.2 s"),  # ended by its deadline, no signal: judged as such
    ]:
        outcome = ScenarioOutcome(
            name="websocket_concurrency",
            metrics={},
            outcomes=[],
            result={"interrupted_reason": reason},
            duration_s=1.2,
            stopped=True,
        )
        out = io.StringIO()
        print_scenario(Console(file=out, width=200, color_system=None), outcome)
        assert out.getvalue().startswith(f"websocket_concurrency {line}")
