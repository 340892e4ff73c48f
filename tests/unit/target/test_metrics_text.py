"""Prometheus rendering of merged counters and per-worker series."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import squall.target
from squall.target import http
from squall.target.metrics import HELP, render, series
from squall.target.runtime import COUNTERS, Runtime


def test_series_sorts_and_escapes_labels() -> None:
    assert series("x_total") == "x_total"
    assert series("x_total", b="2", a='q"') == 'x_total{a="q\\"",b="2"}'


def test_render() -> None:
    text = render(
        {series("errors_total", code="bad_frame"): 2.0, "frames_sent_total": 10.0},
        {"sockets_open": 3.0, "runs_completed_total": 4.0, "load": 0.5},
        worker=42,
    )
    assert text.splitlines() == [
        f"# HELP squall_target_errors_total {HELP['errors_total']}",
        "# TYPE squall_target_errors_total counter",
        'squall_target_errors_total{code="bad_frame"} 2',
        f"# HELP squall_target_frames_sent_total {HELP['frames_sent_total']}",
        "# TYPE squall_target_frames_sent_total counter",
        "squall_target_frames_sent_total 10",
        "# TYPE squall_target_load gauge",  # not a family of the platform's: no help
        'squall_target_load{worker="42"} 0.5',
        f"# HELP squall_target_runs_completed_total {HELP['runs_completed_total']}",
        "# TYPE squall_target_runs_completed_total counter",
        'squall_target_runs_completed_total{worker="42"} 4',
        f"# HELP squall_target_sockets_open {HELP['sockets_open']}",
        "# TYPE squall_target_sockets_open gauge",
        'squall_target_sockets_open{worker="42"} 3',
    ]


def test_help_texts_are_one_line_each() -> None:
    # The text format ends a HELP line at a newline; a backslash would need escaping.
    for name, text in HELP.items():
        assert "\n" not in text, name
        assert "\\" not in text, name
        assert text.endswith("."), name


#: A counter the platform's code increments: ``inc("x")`` or a labelled ``series("x", ...)``.
COUNTED = re.compile(r'\b(?:inc|series)\("([a-z_]+)"')
#: A gauge key in the code that builds ``/metrics``: ``"x": ...`` or ``gauges["x"]``.
KEYED = re.compile(r'"([a-z_]+)"(?:\]|: )')


def test_every_family_the_platform_reports_has_help() -> None:
    sources = Path(squall.target.__file__).parent
    counted = set(COUNTERS)
    for module in sources.glob("*.py"):
        counted.update(COUNTED.findall(module.read_text()))
    keyed = set(KEYED.findall(inspect.getsource(http.metrics_endpoint)))
    keyed.update(KEYED.findall(inspect.getsource(Runtime.stats)))
    assert (counted | keyed) - set(HELP) == set()
    # The scans find what they should (an empty scan would pass the check above).
    assert {"frames_sent_total", "errors_total", "worker_starts_total"} <= counted
    assert {"sockets_open", "redis_up", "runs_queued", "database_up"} <= keyed
    # And HELP describes nothing the platform does not report.
    assert set(HELP) - (counted | keyed) == set()


def test_every_counter_shown_from_the_start_is_described() -> None:
    from squall.target.metrics import UNLABELLED_COUNTERS

    assert all(name in HELP and name.endswith("_total") for name in UNLABELLED_COUNTERS)
