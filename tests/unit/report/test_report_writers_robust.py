"""The report writers given what a run can leave: text a target sent that UTF-8 cannot
encode, an interrupted run, a scenario the suite left out, values that are null or not
finite (a hand-built report)."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import openmetrics_reader
import pytest
from report_samples import load_scenario, report

from squall.report import files
from squall.report.charts import Line, line_chart
from squall.report.files import write_extra_files
from squall.report.html import report_html
from squall.report.junit import junit_xml
from squall.report.openmetrics import openmetrics_text
from squall.suite import SCENARIOS

#: An error message built from bytes that are not UTF-8, as a behaviour may.
LONE = b"caf\xe9".decode("utf-8", "surrogateescape")


def test_a_lone_surrogate_from_a_target_shows_as_its_escape_in_every_file(
    tmp_path: Path,
) -> None:
    scenario = load_scenario(failed=True)
    scenario["result"]["errors"] = [{"kind": f"server.{LONE}", "count": 2, "samples": [LONE]}]
    scenario["metrics"][f"errors.server.{LONE}"] = {"type": "counter", "count": 2}
    scenario["thresholds"][0]["metric"] = f"errors.server.{LONE}"
    scenario["notes"] = [f"note {LONE}"]
    data = report(scenario)
    for render in (junit_xml, openmetrics_text, report_html):
        text = render(data)
        text.encode("utf-8")  # UnicodeEncodeError: the file could not be written
        assert re.search(r"caf\\+udce9", text)  # metrics.txt escapes the backslash: \\
    openmetrics_reader.read_openmetrics(openmetrics_text(data))
    written = write_extra_files(data, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "junit.xml",
        "metrics.txt",
        "report.html",
    ]
    assert all(re.search(r"caf\\+udce9", p.read_text(encoding="utf-8")) for p in written)


def test_a_file_that_fails_for_any_reason_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("not an OSError")

    monkeypatch.setattr("squall.report.files.os.replace", broken)
    with pytest.raises(RuntimeError):
        files._write_atomic(tmp_path / "report.html", "<html>")
    assert list(tmp_path.iterdir()) == []


def test_a_lone_surrogate_left_in_a_file_s_text_is_written_as_its_escape(tmp_path: Path) -> None:
    files._write_atomic(tmp_path / "notes.txt", f"{LONE}\n")
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "caf\\udce9\n"
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def _interrupted(*scenarios: dict[str, Any], selection: list[str]) -> dict[str, Any]:
    data = report(*scenarios)
    data["interrupted"] = True
    data["config"]["scenarios"] = selection
    return data


def _cut_short(name: str) -> dict[str, Any]:
    scenario = load_scenario(name)
    scenario["result"].update(interrupted=True, interrupted_reason="sigint")
    scenario["notes"] = ["interrupted (sigint): partial results"]
    return scenario


def test_html_of_an_interrupted_run_reads_the_scenario_it_cut_short_interrupted() -> None:
    # The terminal said "interrupted" and junit.xml erred; the page read "pass".
    data = _interrupted(load_scenario("a"), _cut_short("b"), selection=["a", "b"])
    page = report_html(data)
    row = '<tr><td>b</td><td><span class="fail">interrupted</span></td>'
    assert row in page
    assert '<h2>Scenario b <span class="fail">interrupted</span></h2>' in page
    assert '<tr><td>a</td><td><span class="pass">pass</span></td>' in page


def test_junit_of_an_interrupted_run_errs_for_what_did_not_finish() -> None:
    data = _interrupted(load_scenario("a"), _cut_short("b"), selection=["a", "b", "c", "d"])
    root = ET.fromstring(junit_xml(data))
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert list(suites) == ["a", "b", "c", "d"]
    assert suites["a"].find("testcase/error") is None
    assert suites["a"].find("testcase/failure") is None
    cut = suites["b"].find("testcase[@name='scenario']/error")
    assert cut is not None
    assert cut.get("type") == "interrupted"
    assert cut.get("message") == "interrupted (sigint): b was cut short, its results are partial"
    for name in ("c", "d"):
        (case,) = suites[name].findall("testcase")
        error = case.find("error")
        assert error is not None
        assert error.get("message") == f"interrupted before {name} finished: it was not judged"
        assert (suites[name].get("tests"), suites[name].get("errors")) == ("1", "1")
    assert (root.get("errors"), root.get("failures")) == ("3", "0")
    assert root.get("tests") == str(3 + 3 + 1 + 1)


def test_junit_of_an_interrupted_run_of_every_scenario_names_each_that_did_not_run() -> None:
    data = _interrupted(_cut_short("websocket_concurrency"), selection=[])
    root = ET.fromstring(junit_xml(data))
    names = [s.get("name") for s in root.findall("testsuite")]
    assert names == list(SCENARIOS)
    assert root.get("errors") == str(len(SCENARIOS))


def test_junit_of_a_whole_run_adds_nothing_for_its_selection() -> None:
    data = report(load_scenario("a"))
    data["config"]["scenarios"] = ["a", "b"]
    root = ET.fromstring(junit_xml(data))
    assert [s.get("name") for s in root.findall("testsuite")] == ["a"]
    assert root.get("errors") == "0"


def test_openmetrics_says_a_run_was_interrupted_and_did_not_pass() -> None:
    data = _interrupted(load_scenario("a"), selection=["a", "b"])
    assert data["verdict"]["ok"]
    families = openmetrics_reader.read_openmetrics(openmetrics_text(data))
    assert families["squall_run_passed"].samples == [("squall_run_passed", "", 0.0)]
    assert families["squall_run_interrupted"].samples == [("squall_run_interrupted", "", 1.0)]
    whole = load_scenario("a")
    whole["metrics"]["run_interrupted"] = {"type": "gauge", "value": 3.0, "min": 0, "max": 3}
    families = openmetrics_reader.read_openmetrics(openmetrics_text(report(whole)))
    assert families["squall_run_passed"].samples == [("squall_run_passed", "", 1.0)]
    assert families["squall_run_interrupted"].samples == [("squall_run_interrupted", "", 0.0)]
    assert families["squall_run_interrupted"].type == "gauge"  # the metric's went elsewhere


def test_html_of_an_interrupted_run_shows_no_passed_badge() -> None:
    data = _interrupted(load_scenario("a"), selection=["a", "b"])
    page = report_html(data)
    assert "PASSED" not in page
    assert '<span class="badge fail">INTERRUPTED</span>' in page
    failed = _interrupted(load_scenario("a", failed=True), selection=["a"])
    failed["verdict"]["ok"] = False
    page = report_html(failed)
    assert '<span class="badge fail">FAILED</span> <span class="badge fail">INTERRUPTED' in page
    assert "PASSED" in report_html(report(load_scenario("a")))


def _left_out() -> dict[str, Any]:
    """platform_races as the suite leaves it out: not run, nothing measured."""
    return {
        **load_scenario("platform_races"),
        "ran": False,
        "thresholds": [],
        "result": None,
        "monitor": None,
    }


def test_html_shows_a_scenario_the_suite_left_out_as_not_applicable_in_its_section() -> None:
    page = report_html(report(_left_out()))
    assert '<h2>Scenario platform_races <span class="na">n/a</span></h2>' in page
    assert '<span class="pass">pass</span>' not in page


def test_a_run_in_which_no_scenario_ran_reads_nothing_ran_not_passed() -> None:
    # The terminal said NOTHING RAN; the page's badge said PASSED and run_passed was 1.
    data = report(_left_out())
    assert data["verdict"]["ok"]
    page = report_html(data)
    assert '<span class="badge fail">NOTHING RAN</span>' in page
    assert "PASSED" not in page
    families = openmetrics_reader.read_openmetrics(openmetrics_text(data))
    assert families["squall_run_passed"].samples == [("squall_run_passed", "", 0.0)]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, None])
def test_charts_leave_out_points_that_are_not_finite(bad: Any) -> None:
    svg = line_chart(
        "t", [Line("p99", [(0.0, 1.0), (1.0, bad), (2.0, 2.0)])], x_label="s", y_label="ms"
    )
    (points,) = re.findall(r'<polyline [^>]*points="([^"]*)"', svg)
    assert len(points.split()) == 2
    scenario = load_scenario()
    scenario["result"]["series"][1]["p99"] = bad
    page = report_html(report(scenario))
    latency = page.split('aria-label="Latency percentiles over time"')[1].split("</svg>")[0]
    lines = re.findall(r'<polyline [^>]*points="([^"]*)"', latency)
    assert [len(p.split()) for p in lines] == [5, 4]


def test_openmetrics_leaves_out_values_that_are_null_or_not_finite() -> None:
    scenario = load_scenario("a")
    metrics = scenario["metrics"]
    metrics["response_time"].update(mean=math.nan, p99=-math.inf, p999=None)
    metrics["users"]["value"] = None
    metrics["success"]["rate"] = math.inf
    metrics["lag"] = {"type": "gauge", "value": math.nan, "min": 0.0, "max": 0.0}
    data = report(scenario)
    text = openmetrics_text(data)
    families = openmetrics_reader.read_openmetrics(text)
    assert not re.search(r"\b(NaN|[+-]?Inf|None)\b", text)
    summary = [
        (name, labels) for name, labels, _ in families["squall_response_time_seconds"].samples
    ]
    assert [re.findall(r'quantile="([\d.]+)"', labels) for name, labels in summary] == [
        ["0.5"],
        ["0.9"],
        ["0.95"],
        [],
    ]
    assert [name for name, _ in summary][-1] == "squall_response_time_seconds_count"
    for family in ("squall_users", "squall_success_ratio", "squall_lag"):
        assert family not in families
    page = report_html(data)
    assert "<td>users</td><td>gauge</td><td>— (min 0, max 5)</td>" in page


def test_openmetrics_help_shows_control_characters_as_escapes() -> None:
    scenario = load_scenario("a")
    code = "errors.server.\x1b[2J\x0b"
    scenario["metrics"][code] = {"type": "counter", "count": 1, "per_second": None}
    text = openmetrics_text(report(scenario))
    assert "\x1b" not in text
    assert "\x0b" not in text
    # As the terminal shows it, its backslash escaped as OpenMetrics escapes one: \\.
    assert "# HELP squall_errors_server___2J_ errors.server.\\\\x1b[2J\\\\x0b (counter)" in text
    openmetrics_reader.read_openmetrics(text)
