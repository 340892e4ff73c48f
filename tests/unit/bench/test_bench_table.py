"""The benchmarks' pure arithmetic and formatting, with hand-written inputs."""

from __future__ import annotations

import pytest
from bench.table import (
    Goal,
    WindowError,
    cumulative,
    fmt_count,
    fmt_kb,
    fmt_ms,
    fmt_percent,
    fmt_ratio,
    markdown_table,
    median,
    ratio,
    render_result,
    render_summary,
    replace_between,
    round_ratios,
    window,
)


def test_window_starts_at_first_sample_after_warmup() -> None:
    samples = [(0.0, 0.0, 0.0), (1.0, 50.0, 0.2), (2.0, 150.0, 0.6), (4.0, 350.0, 1.6)]
    w = window(samples, warmup_s=1.5)
    assert (w.start_s, w.end_s, w.round_trips, w.cpu_s) == (2.0, 4.0, 200.0, 1.0)
    assert w.rate == 100.0
    assert w.cpu_fraction == 0.5
    assert w.per_core == 200.0


def test_window_includes_a_sample_exactly_at_the_warmup() -> None:
    w = window([(0.0, 0.0, 0.0), (1.0, 10.0, 1.0), (3.0, 30.0, 2.0)], warmup_s=1.0)
    assert w.round_trips == 20.0
    assert w.seconds == 2.0


def test_window_needs_two_samples_after_warmup() -> None:
    with pytest.raises(WindowError, match=r"need two samples at or after the 3 s warm-up, got 1"):
        window([(0.0, 0.0, 0.0), (3.5, 10.0, 1.0)], warmup_s=3.0)
    with pytest.raises(WindowError, match="got 0"):
        window([], warmup_s=1.0)


def test_window_rejects_samples_out_of_order() -> None:
    with pytest.raises(WindowError, match="out of order"):
        window([(1.0, 10.0, 0.0), (2.0, 5.0, 0.0)], warmup_s=0.0)
    with pytest.raises(WindowError, match="out of order"):
        window([(2.0, 10.0, 0.0), (1.0, 20.0, 0.0)], warmup_s=0.0)


def test_zero_length_window_reports_zero_rates_not_a_division_error() -> None:
    w = window([(1.0, 10.0, 0.5), (1.0, 10.0, 0.5)], warmup_s=0.0)
    assert (w.rate, w.cpu_fraction, w.per_core) == (0.0, 0.0, 0.0)


def test_cumulative_adds_up_per_second_counts_from_zero() -> None:
    assert cumulative([(1.0, 10.0, 0.1), (2.0, 20.0, 0.3), (2.5, 5.0, 0.4)]) == [
        (0.0, 0.0, 0.0),
        (1.0, 10.0, 0.1),
        (2.0, 30.0, 0.3),
        (2.5, 35.0, 0.4),
    ]


def test_window_splits_cpu_into_user_and_system_when_samples_carry_user_time() -> None:
    samples = [(0.0, 0.0, 0.0, 0.0), (1.0, 100.0, 0.5, 0.2), (3.0, 300.0, 1.5, 0.6)]
    w = window(samples, warmup_s=1.0)
    assert w.user_s == pytest.approx(0.4)
    assert w.user_us == pytest.approx(2000.0)  # 0.4 s over 200 round trips
    assert w.system_us == pytest.approx(3000.0)
    plain = window([(s[0], s[1], s[2]) for s in samples], warmup_s=1.0)
    assert (plain.user_s, plain.user_us, plain.system_us) == (None, None, None)
    assert cumulative([(1.0, 10.0, 0.1, 0.05), (2.0, 20.0, 0.3, 0.1)]) == [
        (0.0, 0.0, 0.0, 0.0),
        (1.0, 10.0, 0.1, 0.05),
        (2.0, 30.0, 0.3, 0.1),
    ]


def test_ratio_is_none_when_it_cannot_be_computed() -> None:
    assert ratio(6.0, 2.0) == 3.0
    assert ratio(None, 2.0) is None
    assert ratio(1.0, None) is None
    assert ratio(1.0, 0.0) is None
    assert ratio(float("nan"), 1.0) is None


def test_formatters() -> None:
    assert fmt_ratio(3.456) == "3.46×"
    assert fmt_percent(0.714) == "71 %"
    assert fmt_count(12345.6) == "12,346"
    assert fmt_ms(0.01234) == "12.3 ms"
    assert fmt_kb(20480) == "20.0 KB"
    assert {fmt_ratio(None), fmt_percent(None), fmt_count(None), fmt_ms(None), fmt_kb(None)} == {
        "—"
    }


def test_goal_at_least_and_at_most() -> None:
    assert Goal("squall vs Locust", 3.2, 3.0).met is True
    assert Goal("squall vs Locust", 2.9, 3.0).met is False
    assert Goal("RSS per socket", 18.0, 20.0, at_least=False, unit="KB").met is True
    assert Goal("RSS per socket", 38.7, 20.0, at_least=False, unit="KB").met is False
    assert Goal("nothing", None, 1.0).met is None


def test_goal_to_dict_shows_target_and_actual_in_its_unit() -> None:
    assert Goal("squall vs bare loop", 0.7512, 0.70, unit="%").to_dict() == {
        "goal": "squall vs bare loop ≥ 70 %",
        "actual": 0.7512,
        "shown": "75.1 %",
        "target": 0.70,
        "at_least": True,
        "met": True,
    }
    shown = Goal("RSS per socket", 38.66, 20.0, at_least=False, unit="KB").to_dict()
    assert (shown["goal"], shown["shown"], shown["met"]) == (
        "RSS per socket ≤ 20.0 KB",
        "38.7 KB",
        False,
    )
    assert Goal("x", None, 3.0).to_dict()["shown"] == "—"
    count = Goal("sockets held", 10_000.0, 10_000.0, unit="").to_dict()
    assert (count["goal"], count["shown"]) == ("sockets held ≥ 10,000", "10,000")


def test_goal_with_rounds_shows_each_round_and_how_many_reached_the_target() -> None:
    goal = Goal("squall vs bare loop", 0.71, 0.70, unit="%", rounds=(0.62, 0.71, None, 0.80))
    assert goal.met is True
    assert goal.rounds_met() == 2
    shown = goal.to_dict()
    assert shown["rounds"] == [0.62, 0.71, None, 0.80]
    assert shown["rounds_shown"] == "62.0 %, 71.0 %, 80.0 % (2 of 3 met)"


def test_a_figure_just_short_of_its_target_never_reads_as_the_target() -> None:
    assert Goal("x", 0.6996, 0.70, unit="%").to_dict()["shown"] == "69.9 %"
    assert Goal("x", 0.70, 0.70, unit="%").to_dict()["shown"] == "70.0 %"
    assert Goal("x", 0.29, 0.30, unit="%").to_dict()["shown"] == "29.0 %"
    assert Goal("x", 2.998, 3.0).to_dict()["shown"] == "2.99×"
    assert Goal("x", 3.0, 3.0).to_dict()["shown"] == "3.00×"
    kb = Goal("RSS per socket", 20.04, 20.0, at_least=False, unit="KB").to_dict()
    assert (kb["shown"], kb["met"]) == ("20.1 KB", False)
    assert Goal("sockets held", 9_999.6, 10_000.0, unit="").to_dict()["shown"] == "9,999"
    at_most = Goal("RSS per socket", 19.0, 20.0, at_least=False, unit="KB", rounds=(19.0, 21.0))
    assert at_most.to_dict()["rounds_shown"] == "19.0 KB, 21.0 KB (1 of 2 met)"
    assert Goal("x", None, 3.0, rounds=(None, None)).to_dict()["rounds_shown"] == "—"
    assert "rounds" not in Goal("x", 3.1, 3.0).to_dict()


def test_goals_table_gets_a_column_for_rounds_only_when_a_goal_has_them() -> None:
    with_rounds = {
        **RESULT,
        "goals": [
            Goal("squall vs bare loop", 0.69, 0.70, unit="%", rounds=(0.62, 0.69, 0.75)).to_dict(),
            Goal("squall vs Locust", 4.2, 3.0).to_dict(),
        ],
    }
    text = render_result(with_rounds)
    assert "| goal | measured | status | each round |" in text
    assert (
        "| squall vs bare loop ≥ 70 % | 69.0 % | **not met** "
        "| 62.0 %, 69.0 %, 75.0 % (1 of 3 met) |" in text
    )
    assert "| squall vs Locust ≥ 3.00× | 4.20× | met | — |" in text
    assert "each round" not in render_result(RESULT)


def test_markdown_table_escapes_pads_and_rejects_long_rows() -> None:
    assert markdown_table(("a", "b"), [("1|2",), ("x", "y")]) == (
        "| a | b |\n|---|---|\n| 1\\|2 |  |\n| x | y |"
    )
    with pytest.raises(ValueError, match="has 3 cells; the table has 2"):
        markdown_table(("a", "b"), [("1", "2", "3")])
    with pytest.raises(ValueError, match="at least one column"):
        markdown_table((), [])


RESULT = {
    "title": "1. Engine",
    "quick": True,
    "command": "python -m bench --only engine --quick",
    "started_at": "2026-01-01T00:00:00+0000",
    "duration_s": 12.4,
    "loadavg": {"before": [0.5, 0.4, 0.3], "after": [1.25, 0.5, 0.3]},
    "table": {"columns": ["client", "rt/s"], "rows": [["squall", "10"]]},
    "goals": [Goal("squall vs Locust", 2.0, 3.0).to_dict()],
    "notes": ["pinned"],
}


def test_render_result_has_table_goals_notes_and_provenance() -> None:
    text = render_result(RESULT)
    assert text.startswith("### 1. Engine\n")
    assert "_Quick (smoke) run" in text
    assert "| squall | 10 |" in text
    assert "| squall vs Locust ≥ 3.00× | 2.00× | **not met** |" in text
    assert "- pinned" in text
    assert "`python -m bench --only engine --quick`" in text
    assert "load average 0.50 before, 1.25 after" in text


def test_render_summary_lists_environment_then_each_result() -> None:
    env = {
        "cpu_model": "Test CPU",
        "cpu_count": 2,
        "python": "3.11.7",
        "platform": "Linux",
        "versions": {"picows": "2.3.1", "locust": "", "squall": "0.1.0"},
    }
    text = render_summary([RESULT, {**RESULT, "title": "2. Platform", "quick": False}], env)
    assert "Machine: Test CPU, 2 cores, Python 3.11.7, Linux." in text
    assert "Versions: picows 2.3.1, squall 0.1.0." in text
    assert text.index("### 1. Engine") < text.index("### 2. Platform")


def test_replace_between_keeps_everything_outside_the_markers() -> None:
    text = "intro\n<!-- s -->\nold\n<!-- e -->\nafter\n"
    assert replace_between(text, "<!-- s -->", "<!-- e -->", "new\n") == (
        "intro\n<!-- s -->\nnew\n<!-- e -->\nafter\n"
    )


def test_replace_between_refuses_without_markers() -> None:
    with pytest.raises(ValueError, match="marker '<!-- s -->' not found"):
        replace_between("no markers", "<!-- s -->", "<!-- e -->", "x")
    with pytest.raises(ValueError, match="marker '<!-- e -->' not found after"):
        replace_between("<!-- e --> then <!-- s -->", "<!-- s -->", "<!-- e -->", "x")


def test_median_skips_missing_values() -> None:
    assert median([3.0, None, 1.0, 2.0]) == 2.0
    assert median([None, None]) is None
    assert median([]) is None


def _machine(cpu: str) -> dict[str, object]:
    return {"cpu_model": cpu, "cpu_count": 2, "python": "3.11.7", "platform": "Linux"}


def test_each_section_names_the_machine_it_was_measured_on() -> None:
    text = render_result({**RESULT, "environment": _machine("CPU A")})
    footer = "load average 0.50 before, 1.25 after · CPU A, 2 cores, Python 3.11.7, Linux</sub>"
    assert footer in text


def test_render_summary_names_one_machine_when_every_result_shares_it() -> None:
    results = [{**RESULT, "environment": _machine("CPU A")}] * 2
    text = render_summary(results, _machine("CPU B"))
    assert "Machine: CPU A, 2 cores, Python 3.11.7, Linux." in text
    assert "Machines:" not in text


def test_render_summary_says_when_results_come_from_different_machines() -> None:
    results = [
        {**RESULT, "environment": _machine("CPU A")},
        {**RESULT, "title": "2. Platform", "environment": _machine("CPU B")},
    ]
    text = render_summary(results, _machine("CPU A"))
    assert "Machines: these results come from 2 different machines" in text
    assert "Machine: CPU A" not in text
    assert "· CPU A, 2 cores" in text
    assert "· CPU B, 2 cores" in text


def test_round_ratios_pair_rounds_and_skip_missing_ones() -> None:
    assert round_ratios([50.0, None, 90.0], [100.0, 80.0, 0.0]) == (0.5, None, None)
    assert median(list(round_ratios([40.0, 60.0, 90.0], [100.0, 100.0, 100.0]))) == 0.6


def _generator(saturated: bool, cpu: int = 70) -> dict[str, object]:
    reasons = (
        [f"worker 0: worker CPU {cpu} % of a core >= 90 %; add processes"] if saturated else []
    )
    return {"saturated": saturated, "reasons": reasons, "cpu_avg_percent": float(cpu)}


PLATFORM = {
    "title": "2. Platform",
    "table": {
        "columns": ["path", "messages / s"],
        "rows": [["bare echo server (ceiling)", "59,700"], ["platform ping path", "19,985"]],
    },
    "notes": ["medians over 3 rounds"],
    "measurements": [
        {"path": "bare echo server (ceiling)", "round": 1, "generator": _generator(True, 98)},
        {"path": "platform ping path", "round": 1, "generator": _generator(False)},
        {"path": "bare echo server (ceiling)", "round": 2, "generator": _generator(True, 95)},
        {"path": "platform ping path", "round": 2, "generator": _generator(True, 91)},
        {"path": "bare echo server (ceiling)", "round": 3, "generator": _generator(True, 98)},
        {"path": "platform ping path", "round": 3, "generator": _generator(False)},
    ],
}


def test_a_row_measured_by_a_saturated_generator_is_marked_with_why() -> None:
    text = render_result(PLATFORM)
    assert "| bare echo server (ceiling) (generator saturated) | 59,700 |" in text
    assert "| platform ping path (generator saturated in 1 of 3 measurements) | 19,985 |" in text
    assert (
        "- generator saturated (bare echo server (ceiling)): in 3 of 3 measurements the load "
        "generator (the squall engine) was itself the bottleneck (worker 0: worker CPU 98 % of "
        "a core >= 90 %; worker 0: worker CPU 95 % of a core >= 90 %), so the row's figures "
        "are the generator's limit, not the target's."
    ) in text
    assert text.index("- medians over 3 rounds") < text.index("- generator saturated (")
    assert PLATFORM["table"]["rows"][0][0] == "bare echo server (ceiling)"  # input untouched


def test_rows_are_unmarked_when_no_generator_was_saturated() -> None:
    growth = {
        "title": "5. Growth",
        "table": {"columns": ["scale", "runs"], "rows": [["1×", "1,125"], ["4×", "4,500"]]},
        "measurements": [
            {"scale": 1.0, "generator": _generator(False)},
            {"scale": 4.0, "generator": _generator(True, 99)},
        ],
    }
    text = render_result(growth)
    assert "| 1× | 1,125 |" in text
    assert "| 4× (generator saturated) | 4,500 |" in text
    assert "generator saturated" not in render_result({**growth, "measurements": []})
    assert "generator saturated" not in render_result(RESULT)


def test_render_summary_says_which_benchmarks_have_no_results() -> None:
    text = render_summary([RESULT], _machine("CPU A"), missing=["platform", "growth"])
    assert "_No results for platform: run `python -m bench --only platform` to measure it._" in (
        text
    )
    assert text.index("### 1. Engine") < text.index("No results for platform")
    assert text.index("No results for platform") < text.index("No results for growth")
