"""The per-scenario lines of the terminal summary."""

from __future__ import annotations

import io

from rich.console import Console

from squall.metrics.result import Counter, Gauge
from squall.report.summary import error_counts, print_scenario
from squall.suite import ScenarioOutcome


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
