"""``report.json`` read back: what ``squall test`` prints from the report the plugin wrote."""

from __future__ import annotations

import json

from squall.metrics.result import Counter
from squall.metrics.thresholds import OutcomeStatus, ThresholdOutcome
from squall.suite import ScenarioOutcome, SuiteReport


def _report() -> SuiteReport:
    held = ThresholdOutcome(
        scenario="echo",
        metric="errors",
        expression="count==0",
        aggregation="count",
        operator="==",
        limit=0.0,
        observed=0.0,
        status=OutcomeStatus.PASSED,
        diagnostic="errors count 0 == 0",
        shown="0",
    )
    return SuiteReport(
        run_id="20260101-000000-aaaa",
        started_at=1.5,
        finished_at=9.25,
        config={"scale": 0.2},
        scenarios=[
            ScenarioOutcome(
                name="echo",
                metrics={"errors": Counter("errors", 0, 0.0)},
                outcomes=[held],
                notes=["a note"],
                table=(("check", "verdict"), [("order", "valid")]),
                duration_s=3.0,
            ),
            # Its thresholds held, but the scenario crashed: the run failed.
            ScenarioOutcome(name="crashed", metrics={}, outcomes=[], error="boom"),
            ScenarioOutcome(name="left_out", metrics={}, outcomes=[], ran=False),
        ],
    )


def test_a_report_read_back_is_the_report_written() -> None:
    written = _report().to_dict()
    read = SuiteReport.from_dict(json.loads(json.dumps(written)))
    assert read.to_dict() == written


def test_a_crashed_scenario_read_back_still_fails_the_run() -> None:
    # The error was dropped on reading: the scenario, and the run, read as passed.
    read = SuiteReport.from_dict(json.loads(json.dumps(_report().to_dict())))
    assert read.scenarios[1].error == "boom"
    assert not read.verdict.ok
    assert (read.verdict.passed, read.verdict.failed) == (1, 1)
