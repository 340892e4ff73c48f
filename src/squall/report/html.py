"""``report.html``: one self-contained page per run (pure: report dictionary in, HTML out).

Everything is inline (CSS, a few lines of JavaScript, SVG charts drawn in
Python), so the file opens anywhere with no network. Sections, each with an
``id``: ``summary``, ``thresholds``, one ``scenario-<name>`` per scenario
(latency percentiles and throughput over time from the result's series, the
latency distribution from the encoded HdrHistogram, CPU and memory of every
monitored process group, the scenario's own table and notes), ``races``
(race tallies, checker verdicts and their evidence) and ``config``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from squall.metrics.result import Trend, error_summaries_of
from squall.report.charts import Line, bar_chart, line_chart
from squall.report.printable import html_text
from squall.report.run_state import cut_short, nothing_ran
from squall.store.records import walk

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#111827;
background:#f9fafb}
header{background:#111827;color:#f9fafb;padding:16px 24px}
header h1{margin:0 0 4px;font-size:20px}
main{padding:8px 24px 40px;max-width:1360px}
section{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:12px 16px;margin:16px 0}
h2{font-size:17px;margin:4px 0 10px}
h3{font-size:15px;margin:14px 0 6px}
table{border-collapse:collapse;margin:6px 0}
th,td{border-bottom:1px solid #e5e7eb;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f3f4f6}
.pass{color:#15803d;font-weight:600}.fail{color:#b91c1c;font-weight:700}.na{color:#6b7280}
.badge{display:inline-block;padding:2px 10px;border-radius:12px;font-weight:700}
.badge.pass{background:#dcfce7}.badge.fail{background:#fee2e2}
.charts{display:flex;flex-wrap:wrap;gap:12px}
svg.chart{background:#fff;border:1px solid #e5e7eb;border-radius:6px}
svg .title{font-size:13px;font-weight:600;fill:#111827}
svg .tick{font-size:11px;fill:#4b5563}
svg .muted{font-size:12px;fill:#6b7280}
svg .grid{stroke:#e5e7eb}
pre{background:#f3f4f6;padding:8px;border-radius:6px;overflow:auto;max-height:360px}
.notes li{color:#92400e}
code{font-size:12px;white-space:pre-wrap;word-break:break-word}
"""

_JS = """
document.querySelectorAll('[data-toggle]').forEach(function (button) {
  button.addEventListener('click', function () {
    var open = button.getAttribute('aria-expanded') !== 'true';
    document.querySelectorAll('details').forEach(function (d) { d.open = open; });
    button.setAttribute('aria-expanded', String(open));
    button.textContent = open ? 'Collapse all evidence' : 'Expand all evidence';
  });
});
document.body.setAttribute('data-ready', 'yes');
"""


def escape(text: str) -> str:
    """``text`` for the page (:func:`~squall.report.printable.html_text`)."""
    return html_text(text)


def _when(ts: Any) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(float(ts), tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _table(columns: Sequence[str], rows: Sequence[Sequence[str]], raw: bool = False) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{c if raw else escape(str(c))}</td>" for c in row) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_STATUS = {
    "passed": '<span class="pass">pass</span>',
    "failed": '<span class="fail">FAIL</span>',
    "not_applicable": '<span class="na">n/a</span>',
    "interrupted": '<span class="fail">interrupted</span>',
}


def _scenario_status(s: Mapping[str, Any], interrupted: bool) -> str:
    """The scenario's verdict, as the summary and its section show it: n/a when the suite
    left it out (``ran`` false), "interrupted" when the run's Ctrl-C or SIGTERM cut its
    load short (``interrupted``: the run's), as the terminal and junit.xml say."""
    if s.get("ran") is False:
        return _STATUS["not_applicable"]
    if interrupted and cut_short(s) is not None:
        return _STATUS["interrupted"]
    return _STATUS.get(str(s.get("verdict")), escape(str(s.get("verdict") or "")))


def latency_buckets(trend: Trend, buckets: int = 14) -> list[tuple[str, float]]:
    """Share of observations (%) per log-spaced latency bucket, from a trend's histogram.

    Read through percentiles (every 0.5 %), so it needs only the histogram's
    public interface; bucket labels are upper edges in milliseconds.
    """
    histogram = trend.histogram
    if not histogram.count:
        return []
    low, high = max(histogram.min, 1e-6), max(histogram.max, 1e-6)
    if high <= low:
        return [(f"{high * 1000:.3g}", 100.0)]
    quantiles = [histogram.percentile(p / 2) for p in range(1, 200)]
    edges = [low * (high / low) ** (i / buckets) for i in range(1, buckets + 1)]
    counts = [0] * buckets
    for value in quantiles:
        index = next((i for i, edge in enumerate(edges) if value <= edge * 1.0000001), buckets - 1)
        counts[index] += 1
    return [
        (f"{edge * 1000:.3g}", 100.0 * n / len(quantiles))
        for edge, n in zip(edges, counts, strict=True)
    ]


def _points(series: Sequence[Mapping[str, Any]], key: str) -> list[tuple[float, float]]:
    """The seconds of ``series`` that have a ``key`` value."""
    return [(p["t"], p[key]) for p in series if p.get(key) is not None]


def _points_ms(series: Sequence[Mapping[str, Any]], key: str) -> list[tuple[float, float]]:
    """The seconds of ``series`` that have a ``key`` percentile, in ms."""
    return [(t, seconds * 1000) for t, seconds in _points(series, key)]


def _scenario_charts(s: Mapping[str, Any]) -> str:
    charts: list[str] = []
    result = s.get("result") or {}
    series = result.get("series") if isinstance(result, Mapping) else None
    if series:
        charts.append(
            line_chart(
                "Latency percentiles over time",
                [
                    # A second in which nothing completed has no percentile: no point.
                    Line("p50 (ms)", _points_ms(series, "p50")),
                    Line("p99 (ms)", _points_ms(series, "p99")),
                ],
                x_label="seconds into the run",
                y_label="ms",
            )
        )
        charts.append(
            line_chart(
                "Throughput over time",
                [
                    Line("sent / s", [(p["t"], p["sent_per_s"]) for p in series]),
                    Line("received / s", [(p["t"], p["received_per_s"]) for p in series]),
                    Line("users", [(p["t"], p["users"]) for p in series]),
                ],
                x_label="seconds into the run",
                y_label="per second",
            )
        )
        if any(p.get("connections") is not None for p in series):  # older reports: none
            charts.append(
                line_chart(
                    "Connections over time",
                    [
                        Line("open at its end", _points(series, "connections")),
                        Line("peak within the second", _points(series, "connections_peak")),
                    ],
                    x_label="seconds into the run",
                    y_label="connections",
                )
            )
    metrics = s.get("metrics", {})
    # A trend with samples: one a scenario declared that nothing reached is empty.
    sampled = [n for n, m in metrics.items() if m.get("type") == "trend" and m.get("count")]
    trend_name = next(
        (n for n in ("response_time", "round_trip") if n in sampled),
        next(iter(sampled), None),
    )
    if trend_name is not None:
        try:
            buckets = latency_buckets(Trend.from_dict(metrics[trend_name]))
        except (ValueError, TypeError, KeyError):  # a hand-built trend: NaN or null extremes
            buckets = None
        if buckets is not None:
            charts.append(
                bar_chart(
                    f"{trend_name} distribution (bucket upper edge, ms)",
                    buckets,
                    y_label="% of observations",
                )
            )
    monitor = s.get("monitor") or {}
    groups = monitor.get("groups") or {}
    if groups:
        charts.append(
            line_chart(
                "CPU per process group",
                [
                    Line(name, [(p["t"], p["cpu_percent"]) for p in g.get("series", [])])
                    for name, g in groups.items()
                ],
                x_label="seconds",
                y_label="% of one core",
            )
        )
        charts.append(
            line_chart(
                "Memory (RSS) per process group",
                [
                    Line(name, [(p["t"], p["rss_mb"]) for p in g.get("series", [])])
                    for name, g in groups.items()
                ],
                x_label="seconds",
                y_label="MB",
            )
        )
    return f'<div class="charts">{"".join(charts)}</div>' if charts else ""


def _figure(value: Any, spec: str, scale: float = 1.0) -> str:
    """``value`` (times ``scale``) formatted with ``spec``; ``—`` when it is no number (null
    in a hand-built report)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    return format(value * scale, spec)


def _metrics_table(s: Mapping[str, Any]) -> str:
    rows = []
    for name, m in sorted(s.get("metrics", {}).items()):
        kind = m.get("type")
        if kind == "trend":

            def ms(key: str, m: Mapping[str, Any] = m) -> str:
                return _figure(m.get(key), ".1f", 1000)

            figure = (
                f"n={m['count']} mean {ms('mean')} ms · p50 {ms('p50')} · "
                f"p95 {ms('p95')} · p99 {ms('p99')} · max {ms('max')} ms"
                if m.get("count")
                else "no samples (n=0)"
            )
        elif kind == "counter":
            rate = m.get("per_second")
            figure = f"{m['count']}" + ("" if rate is None else f" ({_figure(rate, '.1f')}/s)")
        elif kind == "rate":
            figure = (
                f"{_figure(m.get('rate'), '.2%')} ({m['passes']}/{m['total']})"
                if m.get("total")
                else "no samples (0/0)"
            )
        else:
            value, low, high = (_figure(m.get(key, 0), ".4g") for key in ("value", "min", "max"))
            figure = f"{value} (min {low}, max {high})"
        rows.append((name, str(kind), figure))
    return _table(("metric", "kind", "figures"), rows) if rows else ""


def _errors(s: Mapping[str, Any]) -> str:
    """The scenario's crash, if any, and its errors by kind with their sample messages (as
    the terminal summary shows them, but every kind and every kept sample)."""
    parts = []
    if s.get("error"):
        parts.append(
            f'<p class="fail">The scenario raised {escape(str(s["error"]))}; '
            "its measurements are lost.</p>"
        )
    rows = [
        (
            escape(e.kind),
            str(e.count),
            "<br>".join(f"<code>{escape(text)}</code>" for text in e.samples),
        )
        for e in error_summaries_of(s.get("result"))
    ]
    if rows:
        parts.append("<h3>Errors</h3>" + _table(("kind", "count", "samples"), rows, raw=True))
    return "".join(parts)


def _races(report: Mapping[str, Any]) -> str:
    tallies: list[tuple[str, ...]] = []
    verdicts: list[tuple[str, ...]] = []
    for s in report["scenarios"]:
        for path, d in walk(s.get("result") or {}):
            if isinstance(d.get("tally"), Mapping) and path:
                t = d["tally"]
                tallies.append(
                    tuple(
                        escape(str(v))
                        for v in (
                            s["name"],
                            path,
                            t.get("detected", 0),
                            t.get("prevented", 0),
                            t.get("unprevented", 0),
                            t.get("violations", 0),
                        )
                    )
                )
            if {"checker", "valid", "summary", "counts", "evidence"} <= d.keys():
                valid = d["valid"]
                word = (
                    '<span class="pass">valid</span>'
                    if valid
                    else '<span class="na">n/a</span>'
                    if valid is None
                    else '<span class="fail">INVALID</span>'
                )
                evidence = d.get("evidence") or []
                detail = (
                    f"<details><summary>{len(evidence)} evidence item(s)</summary><pre>"
                    f"{escape(json.dumps(evidence, indent=2))}</pre></details>"
                    if evidence
                    else "—"
                )
                verdicts.append(
                    (
                        escape(str(s["name"])),
                        escape(path),
                        escape(str(d["checker"])),
                        word,
                        escape(str(d["summary"])),
                        detail,
                    )
                )
    if not tallies and not verdicts:
        return (
            '<section id="races"><h2>Race conditions</h2>'
            "<p>No race checks in this run.</p></section>"
        )
    return (
        '<section id="races"><h2>Race conditions and checker verdicts</h2>'
        '<button type="button" data-toggle aria-expanded="false">Expand all evidence</button>'
        "<h3>Tallies</h3>"
        + _table(
            ("scenario", "where", "detected", "prevented", "unprevented", "violations"),
            tallies,
            raw=True,
        )
        + "<h3>Verdicts</h3>"
        + _table(
            ("scenario", "where", "checker", "verdict", "summary", "evidence"), verdicts, raw=True
        )
        + "</section>"
    )


def _baseline_line(report: Mapping[str, Any]) -> str:
    """What the comparison with the run's baseline found (``--baseline``), as a sentence."""
    baseline = report.get("baseline")
    if not isinstance(baseline, Mapping):
        return ""
    regressions = [str(r) for r in baseline.get("regressions") or []]
    against = escape(str(baseline.get("run_id")))
    if not regressions:
        return f" No regression against {against}."
    items = "".join(f"<li>{escape(r)}</li>" for r in regressions)
    return f" {len(regressions)} regression(s) against {against}:</p><ul>{items}</ul><p>"


def report_html(report: Mapping[str, Any]) -> str:
    """The whole page for ``report`` (a report.json dictionary)."""
    verdict = report["verdict"]
    ok = bool(verdict.get("ok"))
    interrupted = bool(report.get("interrupted"))
    badge = f'<span class="badge {"pass" if ok else "fail"}">{"PASSED" if ok else "FAILED"}</span>'
    if report.get("interrupted"):
        # Never "PASSED": what did not run was not judged (the terminal says INTERRUPTED).
        badge = ("" if ok else badge + " ") + '<span class="badge fail">INTERRUPTED</span>'
    elif ok and nothing_ran(report):
        badge = '<span class="badge fail">NOTHING RAN</span>'
    duration = (
        float(report["finished_at"]) - float(report["started_at"])
        if report.get("finished_at") is not None
        else math.nan
    )
    summary_rows = [
        (
            escape(str(s["name"])),
            _scenario_status(s, interrupted),
            f"{float(s.get('duration_s', 0.0)):.1f} s",
            escape("; ".join(map(str, s.get("notes", [])))),
        )
        for s in report["scenarios"]
    ]
    threshold_rows = [
        (
            escape(str(s["name"])),
            escape(str(t["metric"])),
            escape(str(t["expression"])),
            escape(str(t.get("diagnostic", ""))),
            _STATUS.get(str(t.get("status")), escape(str(t.get("status")))),
        )
        for s in report["scenarios"]
        for t in s.get("thresholds", [])
    ]
    sections = [
        '<section id="summary"><h2>Summary</h2>'
        f"<p>{badge} {verdict.get('passed', 0)} threshold(s) passed, "
        f"{verdict.get('failed', 0)} failed, {verdict.get('not_applicable', 0)} not applicable."
        f"{_baseline_line(report)}</p><p>Started {_when(report.get('started_at'))}, finished "
        f"{_when(report.get('finished_at'))} ({duration:.1f} s).</p>"
        + _table(("scenario", "verdict", "duration", "notes"), summary_rows, raw=True)
        + "</section>",
        '<section id="thresholds"><h2>Thresholds</h2>'
        + _table(
            ("scenario", "metric", "threshold", "observed", "result"), threshold_rows, raw=True
        )
        + "</section>",
    ]
    for s in report["scenarios"]:
        notes = "".join(f"<li>{escape(str(n))}</li>" for n in s.get("notes", []))
        own = ""
        if s.get("table"):
            own = "<h3>Details</h3>" + _table(s["table"]["columns"], s["table"]["rows"])
        sections.append(
            f'<section id="scenario-{escape(str(s["name"]))}" class="scenario">'
            f"<h2>Scenario {escape(str(s['name']))} {_scenario_status(s, interrupted)}</h2>"
            + (f'<ul class="notes">{notes}</ul>' if notes else "")
            + _errors(s)
            + _scenario_charts(s)
            + "<h3>Metrics</h3>"
            + _metrics_table(s)
            + own
            + "</section>"
        )
    sections.append(_races(report))
    sections.append(
        '<section id="config"><h2>Configuration</h2><pre>'
        + escape(json.dumps(report.get("config", {}), indent=2, default=str))
        + "</pre></section>"
    )
    title = f"squall run {report['run_id']}"
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{_CSS}</style></head><body>"
        f"<header><h1>{escape(title)}</h1><div>schema {escape(str(report.get('schema', '')))}"
        "</div></header><main>"
        + "".join(sections)
        + f"</main><script>{_JS}</script></body></html>\n"
    )
