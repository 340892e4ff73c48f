"""Prometheus rendering of merged counters and per-worker series."""

from __future__ import annotations

from squall.target.metrics import render, series


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
        "# TYPE squall_target_errors_total counter",
        'squall_target_errors_total{code="bad_frame"} 2',
        "# TYPE squall_target_frames_sent_total counter",
        "squall_target_frames_sent_total 10",
        "# TYPE squall_target_load gauge",
        'squall_target_load{worker="42"} 0.5',
        "# TYPE squall_target_runs_completed_total counter",
        'squall_target_runs_completed_total{worker="42"} 4',
        "# TYPE squall_target_sockets_open gauge",
        'squall_target_sockets_open{worker="42"} 3',
    ]
