"""junit.xml, metrics.txt and report.html from hand-written reports."""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import openmetrics_reader
from report_samples import load_scenario, race_scenario, report

from squall.metrics.histogram import LatencyHistogram
from squall.metrics.result import Counter, Gauge, Rate, Trend
from squall.report.files import write_extra_files
from squall.report.html import latency_buckets, report_html
from squall.report.junit import junit_xml
from squall.report.openmetrics import metric_name, openmetrics_text


def test_junit_has_a_case_per_scenario_and_threshold_with_failures() -> None:
    root = ET.fromstring(junit_xml(report(load_scenario(failed=True), race_scenario())))
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["websocket_concurrency", "redis_locks"]
    cases = suites[0].findall("testcase")
    assert [c.get("name") for c in cases] == [
        "scenario",
        "response_time: p(95) <= 0.2s",
        "ws_connect: p(95) <= 5s",
    ]
    failure = cases[1].find("failure")
    assert failure is not None
    assert "FAILED" in (failure.get("message") or "")
    assert cases[0].find("failure") is not None
    assert cases[2].find("skipped") is not None
    assert root.get("failures") == "2"
    assert root.get("tests") == "4"
    assert suites[1].find("testcase/failure") is None


def test_junit_skips_a_scenario_the_suite_left_out() -> None:
    left_out = {
        "name": "platform_races",
        "duration_s": 0.0,
        "verdict": "passed",
        "ran": False,
        "metrics": {},
        "thresholds": [],
        "notes": ["not run: it drives the reference platform's own protocol"],
    }
    root = ET.fromstring(junit_xml(report(left_out)))
    (suite,) = root.findall("testsuite")
    skipped = suite.find("testcase/skipped")
    assert skipped is not None
    assert skipped.get("message") == "not run: it drives the reference platform's own protocol"
    assert (suite.get("skipped"), root.get("skipped"), root.get("failures")) == ("1", "1", "0")


def test_junit_names_the_errors_of_a_failed_scenario_and_the_crash_of_another() -> None:
    failing = load_scenario(failed=True)
    failing["result"]["errors"] = [{"kind": "protocol", "count": 4, "samples": ["no answer"]}]
    crashed = {
        **load_scenario("agent_context"),
        "verdict": "failed",
        "thresholds": [],
        "error": "RuntimeError: the database went away (at s.py:3 in run)",
    }
    root = ET.fromstring(junit_xml(report(failing, crashed)))
    first, second = root.findall("testsuite")
    failure = first.find("testcase/failure")
    assert failure is not None
    assert (failure.text or "").endswith("FAILED\nerrors.protocol: 4\n  no answer")
    error = second.find("testcase/error")
    assert error is not None
    assert error.get("message") == (
        "agent_context raised RuntimeError: the database went away (at s.py:3 in run)"
    )
    assert second.find("testcase/failure") is None
    assert (second.get("errors"), second.get("failures")) == ("1", "0")
    assert (root.get("errors"), root.get("failures")) == ("1", "2")


def test_junit_names_the_timeouts_of_a_failed_scenario() -> None:
    # Its failure read only "success rate = 0": the timeouts the summary names were left out.
    failing = load_scenario(failed=True)
    failing["metrics"]["timeouts"] = Counter("timeouts", 60, 2.0).to_dict()
    root = ET.fromstring(junit_xml(report(failing)))
    failure = root.find("testsuite/testcase/failure")
    assert failure is not None
    assert (failure.text or "").endswith("FAILED\ntimeouts: 60 (no answer within the timeout)")


def test_junit_of_a_passing_run_has_no_failure() -> None:
    root = ET.fromstring(junit_xml(report(load_scenario())))
    assert root.findall(".//failure") == []
    assert root.get("failures") == "0"


def test_openmetrics_families_and_eof() -> None:
    text = openmetrics_text(report(load_scenario(failed=True), race_scenario()))
    openmetrics_reader.read_openmetrics(text)
    assert text.endswith("# EOF\n")
    assert text.count("# EOF") == 1
    assert "# TYPE squall_response_time_seconds summary" in text
    assert "# UNIT squall_response_time_seconds seconds" in text
    assert re.search(
        r'^squall_response_time_seconds\{scenario="websocket_concurrency",quantile="0.99"\} 0\.4',
        text,
        re.M,
    )
    assert 'squall_response_time_seconds_count{scenario="websocket_concurrency"} 5' in text
    assert 'squall_messages_sent_total{scenario="websocket_concurrency"} 50' in text
    assert 'squall_success_ratio{scenario="websocket_concurrency"} 0.96' in text
    assert 'squall_violations{scenario="redis_locks"} 0' in text
    assert "squall_run_passed 0" in text
    assert re.search(r'^squall_threshold_passed\{.*expression="p\(95\) <= 0.2s"\} 0$', text, re.M)
    # Every family is declared once, before its samples.
    types = re.findall(r"^# TYPE (\S+)", text, re.M)
    assert len(types) == len(set(types))


def test_openmetrics_leaves_out_a_rate_with_no_samples() -> None:
    checked, unchecked, older = (load_scenario(name) for name in ("a", "b", "c"))
    unchecked["metrics"]["success"] = Rate("success", 0, 0).to_dict()
    older["metrics"]["success"] = {**Rate("success", 0, 0).to_dict(), "rate": 0.0}
    for name in ("success", "delivery"):
        checked["metrics"][name] = Rate(name, 0, 2).to_dict()  # checked, all failed: 0
    unchecked["metrics"]["delivery"] = Rate("delivery", 0, 0).to_dict()
    text = openmetrics_text(report(checked, unchecked, older))
    openmetrics_reader.read_openmetrics(text)
    assert 'squall_success_ratio{scenario="a"} 0' in text.splitlines()
    assert [line for line in text.splitlines() if line.startswith("squall_success_ratio")] == [
        'squall_success_ratio{scenario="a"} 0'
    ]
    # A family no scenario has a sample of is left out, not declared empty.
    text = openmetrics_text(report(unchecked))
    assert "squall_delivery_ratio" not in text
    assert "squall_success_ratio" not in text
    assert text.endswith("# EOF\n")


def test_openmetrics_gives_a_trend_with_no_samples_its_count_and_no_quantiles() -> None:
    timed, untimed, older = (load_scenario(name) for name in ("a", "b", "c"))
    empty = Trend.from_histogram("response_time", LatencyHistogram()).to_dict()
    untimed["metrics"]["response_time"] = empty
    statistics = ("min", "max", "mean", "stdev", "p50", "p90", "p95", "p99", "p999")
    older["metrics"]["response_time"] = {**empty, **dict.fromkeys(statistics, 0.0)}
    text = openmetrics_text(report(timed, untimed, older))
    openmetrics_reader.read_openmetrics(text)
    lines = text.splitlines()
    family = [line for line in lines if line.startswith("squall_response_time_seconds")]
    quantiles = [re.findall(r'scenario="(\w)",quantile="([\d.]+)"', line) for line in family]
    assert [q for (q,) in filter(None, quantiles)] == [
        ("a", q) for q in ("0.5", "0.9", "0.95", "0.99", "0.999")
    ]
    assert 'squall_response_time_seconds_count{scenario="a"} 5' in family
    for scenario in ("b", "c"):
        assert [line for line in family if f'scenario="{scenario}"' in line] == [
            f'squall_response_time_seconds_count{{scenario="{scenario}"}} 0',
            f'squall_response_time_seconds_sum{{scenario="{scenario}"}} 0',
        ]
    assert lines.count("# TYPE squall_response_time_seconds summary") == 1


def test_html_says_a_trend_has_no_samples() -> None:
    timed, untimed = load_scenario("a"), load_scenario("b")
    untimed["metrics"]["response_time"] = Trend.from_histogram(
        "response_time", LatencyHistogram()
    ).to_dict()
    page = report_html(report(timed, untimed))
    assert page.count("<td>response_time</td><td>trend</td><td>no samples (n=0)</td>") == 1
    assert "<td>response_time</td><td>trend</td><td>n=5 mean " in page


def test_html_leaves_a_second_without_percentiles_out_of_the_latency_chart() -> None:
    scenario = load_scenario()
    series = scenario["result"]["series"]
    series[2]["p50"] = series[2]["p99"] = None  # nothing completed in that second
    page = report_html(report(scenario))
    latency = page.split('aria-label="Latency percentiles over time"')[1].split("</svg>")[0]
    lines = re.findall(r'<polyline [^>]*points="([^"]*)"', latency)
    assert [len(points.split()) for points in lines] == [4, 4]  # 5 seconds, one without
    everything_quiet = load_scenario()
    for point in everything_quiet["result"]["series"]:
        point["p50"] = point["p99"] = None
    page = report_html(report(everything_quiet))
    assert "Throughput over time" in page
    assert "None" not in page


def test_html_charts_connections_over_time_when_the_series_has_them() -> None:
    older = report_html(report(load_scenario()))  # a series without connections
    assert "Connections over time" not in older
    scenario = load_scenario()
    for point, (end, peak) in zip(
        scenario["result"]["series"], [(5, 5), (0, 75), (3, 40), (5, 5), (5, 5)], strict=True
    ):
        point["connections"], point["connections_peak"] = end, peak
    page = report_html(report(scenario))
    chart = page.split('aria-label="Connections over time"')[1].split("</svg>")[0]
    assert ">open at its end</text>" in chart
    assert ">peak within the second</text>" in chart
    lines = re.findall(r'<polyline [^>]*points="([^"]*)"', chart)
    assert [len(points.split()) for points in lines] == [5, 5]


def test_html_says_a_rate_has_no_samples() -> None:
    scenario = load_scenario()
    scenario["metrics"]["delivery"] = Rate("delivery", 0, 0).to_dict()
    scenario["metrics"]["success"] = Rate("success", 0, 4).to_dict()
    page = report_html(report(scenario))
    assert "<td>delivery</td><td>rate</td><td>no samples (0/0)</td>" in page
    assert "<td>success</td><td>rate</td><td>0.00% (0/4)</td>" in page


def test_metric_names_are_sanitised() -> None:
    assert metric_name("errors.timeout") == "squall_errors_timeout"


def _suffixed(stem: str, metric: str, unit: str = "") -> str:
    digest = hashlib.sha256(metric.encode()).hexdigest()[:8]
    return f"{stem}_{digest}{unit}"


def _families_of(*scenarios: dict[str, Any]) -> dict[str, openmetrics_reader.Family]:
    return openmetrics_reader.read_openmetrics(openmetrics_text(report(*scenarios)))


def test_openmetrics_keeps_metrics_whose_names_sanitise_alike_apart() -> None:
    first, second = load_scenario("a"), load_scenario("b")
    for scenario, counts in ((first, (3, 5)), (second, (7, 11))):
        names = ("errors.server.bad-frame", "errors.server.bad_frame")
        for name, n in zip(names, counts, strict=True):
            scenario["metrics"][name] = Counter(name, n, None).to_dict()
    dotted = "errors.server.bad.frame"
    second["metrics"][dotted] = Counter(dotted, 13, None).to_dict()
    families = _families_of(first, second)
    stem = "squall_errors_server_bad_frame"
    # The name with the fewest characters replaced keeps the family name; the others get a
    # suffix derived from theirs.
    wanted = {
        stem: ("errors.server.bad_frame", [5, 11]),
        _suffixed(stem, "errors.server.bad-frame"): ("errors.server.bad-frame", [3, 7]),
        _suffixed(stem, "errors.server.bad.frame"): ("errors.server.bad.frame", [13]),
    }
    found = {
        name: (f.help.removesuffix(" (counter)"), [v for _, _, v in f.samples])
        for name, f in families.items()
        if name.startswith(stem)
    }
    assert found == wanted
    assert all(families[name].type == "counter" for name in wanted)


def test_openmetrics_names_clashing_families_alike_whatever_the_order() -> None:
    histogram = LatencyHistogram.of([0.01, 0.02])
    names = ("a.b", "a_b", "a-b")

    def scenario(name: str, metrics: tuple[str, ...]) -> dict[str, Any]:
        built = load_scenario(name)
        for metric in metrics:
            built["metrics"][metric] = Trend.from_histogram(metric, histogram).to_dict()
        return built

    def helps(*scenarios: dict[str, Any]) -> dict[str, str]:
        found = _families_of(*scenarios)
        return {n: f.help for n, f in found.items() if n.startswith("squall_a_")}

    forward = helps(scenario("s", names))
    assert forward == helps(scenario("t", names[::-1]))
    assert forward == helps(scenario("t", names[2:]), scenario("s", names[:2]))
    assert forward == {
        "squall_a_b_seconds": "a_b (trend)",
        _suffixed("squall_a_b", "a.b", "_seconds"): "a.b (trend)",
        _suffixed("squall_a_b", "a-b", "_seconds"): "a-b (trend)",
    }
    # Without the name that needs no sanitising, the first by name keeps the plain one.
    assert set(helps(scenario("s", ("a-b", "a.b"))).values()) == {"a-b (trend)", "a.b (trend)"}
    assert helps(scenario("s", ("a.b", "a-b")))["squall_a_b_seconds"] == "a-b (trend)"


def test_openmetrics_families_never_clash_on_their_sample_names() -> None:
    first, second = load_scenario("a"), load_scenario("b")
    first["metrics"].update(
        {
            "x": Counter("x", 2, 1.0).to_dict(),  # writes squall_x_total
            "x_total": Gauge("x_total", 4.0, 0.0, 4.0).to_dict(),
            "run_passed": Gauge("run_passed", 1.0, 1.0, 1.0).to_dict(),
            "threshold.passed": Gauge("threshold.passed", 1.0, 1.0, 1.0).to_dict(),
            "response_time_seconds_count": Gauge("c", 9.0, 9.0, 9.0).to_dict(),
        }
    )
    second["metrics"]["x"] = Gauge("x", 6.0, 0.0, 6.0).to_dict()  # a gauge here, a counter there
    families = _families_of(first, second)
    assert families["squall_x"].type == "counter"
    assert families["squall_x"].samples == [("squall_x_total", '{scenario="a"}', 2.0)]
    assert families["squall_run_passed"].samples == [("squall_run_passed", "", 1.0)]
    assert [s[1] for s in families["squall_threshold_passed"].samples] == [
        '{scenario="a",metric="response_time",expression="p(95) <= 0.2s"}',
        '{scenario="b",metric="response_time",expression="p(95) <= 0.2s"}',
    ]
    moved = {
        "x_total": (_suffixed("squall_x_total", "x_total"), "gauge"),
        "run_passed": (_suffixed("squall_run_passed", "run_passed"), "gauge"),
        "threshold.passed": (_suffixed("squall_threshold_passed", "threshold.passed"), "gauge"),
        "response_time_seconds_count": (
            _suffixed("squall_response_time_seconds_count", "response_time_seconds_count"),
            "gauge",
        ),
        "x": (_suffixed("squall_x", "x"), "gauge"),
    }
    for metric, (name, kind) in moved.items():
        assert families[name].type == kind
        assert families[name].help == f"{metric} ({kind})"


def test_openmetrics_writes_a_threshold_listed_twice_once() -> None:
    scenario = load_scenario()
    scenario["thresholds"].append(dict(scenario["thresholds"][0]))
    families = _families_of(scenario)
    assert len(families["squall_threshold_passed"].samples) == 1


def test_latency_buckets_cover_the_distribution() -> None:
    trend = Trend.from_dict(load_scenario()["metrics"]["response_time"])
    buckets = latency_buckets(trend)
    assert abs(sum(share for _, share in buckets) - 100.0) < 1e-6
    assert float(buckets[-1][0]) == 400  # upper edge: the 400 ms observation, exactly
    assert latency_buckets(Trend.from_histogram("t", LatencyHistogram())) == []


def test_html_is_self_contained_with_every_section() -> None:
    page = report_html(report(load_scenario(failed=True), race_scenario()))
    for section in (
        'id="summary"',
        'id="thresholds"',
        'id="scenario-websocket_concurrency"',
        'id="scenario-redis_locks"',
        'id="races"',
        'id="config"',
    ):
        assert section in page
    assert "Latency percentiles over time" in page
    assert "Throughput over time" in page
    assert "response_time distribution" in page
    assert "CPU per process group" in page
    assert "Memory (RSS) per process group" in page
    assert "c0 and c1 both held the lock" in page  # evidence is shown
    assert "&lt;angle&gt;" in page  # notes are escaped
    assert "<td>operations</td><td>counter</td><td>12</td>" in page  # a count without a rate
    assert "<svg" in page
    assert not re.search(r"""(src|href)=["']https?://""", page)


def test_html_shows_errors_with_their_samples_and_a_scenario_crash() -> None:
    failing = load_scenario(failed=True)
    failing["result"]["errors"] = [
        {"kind": "protocol", "count": 4, "samples": ["no answer <in time>", "second sample"]},
        {"kind": "KeyError", "count": 1, "samples": ["'user' (at my.py:3 in chat)"]},
    ]
    crashed = {**load_scenario("agent_context"), "error": "RuntimeError: <gone>", "result": None}
    page = report_html(report(failing, crashed))
    assert "<h3>Errors</h3>" in page
    assert (
        "<td>protocol</td><td>4</td><td><code>no answer &lt;in time&gt;</code><br>"
        "<code>second sample</code></td>"
    ) in page
    assert "<td>KeyError</td><td>1</td>" in page
    assert "The scenario raised RuntimeError: &lt;gone&gt;; its measurements are lost." in page


def test_write_extra_files(tmp_path: Path) -> None:
    written = write_extra_files(report(load_scenario()), tmp_path / "run")
    assert sorted(p.name for p in written) == ["junit.xml", "metrics.txt", "report.html"]
    assert all(p.stat().st_size > 0 for p in written)


def test_control_characters_from_a_target_leave_junit_well_formed_and_show_as_escapes() -> None:
    failing = load_scenario(failed=True)
    failing["result"]["errors"] = [
        {"kind": "server.a\x00b", "count": 2, "samples": ["frame \x1b[31mred\x0b\ufffe"]}
    ]
    failing["notes"] = ["note \x01"]
    failing["thresholds"][0]["diagnostic"] = "limit \x1b[2J"
    data = report(failing)
    root = ET.fromstring(junit_xml(data))  # ill-formed XML raises here
    (suite,) = root.findall("testsuite")
    failure = suite.find("testcase/failure")
    assert failure is not None
    assert failure.text is not None
    assert "errors.server.a\\x00b: 2\n  frame \\x1b[31mred\\x0b\\ufffe" in failure.text
    assert suite.findtext("testcase/system-out") == "note \\x01"
    threshold = suite.find("testcase[@name='response_time: p(95) <= 0.2s']/failure")
    assert threshold is not None
    assert threshold.get("message") == "limit \\x1b[2J"
    page = report_html(data)
    assert "\x1b" not in page
    assert "\x00" not in page
    assert "frame \\x1b[31mred\\x0b\\ufffe" in page
    assert "<li>note \\x01</li>" in page


def test_a_name_from_a_target_stays_on_one_line_in_junit() -> None:
    scenario = load_scenario(failed=True)
    scenario["thresholds"][0]["metric"] = "errors.server.bad\ncode\there"
    scenario["thresholds"][0]["diagnostic"] = "first line\nsecond line"
    (suite,) = ET.fromstring(junit_xml(report(scenario))).findall("testsuite")
    names = [case.get("name") for case in suite.findall("testcase")]
    assert "errors.server.bad\\ncode\\there: p(95) <= 0.2s" in names
    # Messages keep their lines: only names are folded.
    failure = suite.find("testcase/failure")
    assert failure is not None
    assert failure.text is not None
    assert "first line\nsecond line" in failure.text


def test_the_latency_chart_skips_a_trend_without_samples() -> None:
    # A response_time declared but never reached (every message failed) drew no chart,
    # though the scenario's handshakes had been timed.
    scenario = load_scenario()
    empty = Trend.from_histogram("response_time", LatencyHistogram()).to_dict()
    scenario["metrics"]["response_time"] = empty
    handshakes = LatencyHistogram.of([0.010, 0.020])
    scenario["metrics"]["ws_connect"] = Trend.from_histogram("ws_connect", handshakes).to_dict()
    page = report_html(report(scenario))
    assert "ws_connect distribution" in page
    assert "response_time distribution" not in page
