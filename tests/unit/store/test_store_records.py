"""A report flattened into the results tables' rows (pure)."""

from __future__ import annotations

import json

import pytest

from squall.metrics.histogram import LatencyHistogram
from squall.metrics.result import Counter, Rate, Trend
from squall.store.records import (
    Provenance,
    ReportShapeError,
    run_record,
    scenario_set,
    without_nul,
)

PROVENANCE = Provenance("0.1.0", "3.11.9", "Linux", "host-a")


def _db_race() -> dict[str, object]:
    verdict_ok = {"checker": "ledger.balance", "valid": True, "summary": "ok",
                  "counts": {"violations": 0}, "evidence": []}  # fmt: skip
    lost = {"kind": "lost_update", "message": "debit 3 overwrote debit 2", "ops": [], "details": {}}
    verdict_bad = {"checker": "ledger.version_chain", "valid": False, "summary": "2 violations",
                   "counts": {"violations": 3}, "evidence": [lost]}  # fmt: skip
    isolation = {"checker": "isolation.threads", "valid": True, "summary": "no leak",
                 "counts": {"violations": 0}, "evidence": []}  # fmt: skip
    return {
        "name": "db_race",
        "metrics": {
            "operations": {"type": "counter", "name": "operations", "count": 40, "per_second": 0.0}
        },
        "thresholds": [],
        "result": {
            "writers": 10,
            "tally": {"detected": 5, "prevented": 5, "unprevented": 0, "violations": 0},
            "isolation": isolation,
            "strategies": [
                {
                    "strategy": "optimistic",
                    "ops_ok": 20,
                    "ops_per_s": 100.0,
                    "retries": 5,
                    "lost_updates": 0,
                    "caught": None,
                    "valid": True,
                    "tally": {"detected": 5, "prevented": 5, "unprevented": 0, "violations": 0},
                    "rounds": [
                        {
                            "number": 0,
                            "writers": 10,
                            "ops_failed": 5,
                            "conflicts_detected": 5,
                            "verdicts": [verdict_ok],
                        }
                    ],
                },
                {
                    "strategy": "naive",
                    "ops_ok": 20,
                    "ops_per_s": 300.0,
                    "retries": 0,
                    "lost_updates": 3,
                    "caught": True,
                    "valid": True,
                    "tally": {"detected": 0, "prevented": 0, "unprevented": 0, "violations": 3},
                    "rounds": [
                        {
                            "number": 0,
                            "writers": 10,
                            "ops_failed": 0,
                            "conflicts_detected": 0,
                            "verdicts": [verdict_bad],
                        },
                        {
                            "number": 1,
                            "writers": 20,
                            "ops_failed": 0,
                            "conflicts_detected": 0,
                            "verdicts": [],
                        },
                    ],
                },
            ],
        },
    }


def _report() -> dict[str, object]:
    return {
        "schema": "squall.report/1",
        "run_id": "r1",
        "started_at": 0.0,
        "finished_at": 10.0,
        "interrupted": False,
        "verdict": {"ok": False, "passed": 3, "failed": 1, "not_applicable": 2},
        "config": {"scale": 1},
        "scenarios": [_db_race()],
    }


def test_session_values() -> None:
    record = run_record(_report(), PROVENANCE)
    assert record.run_id == "r1"
    assert record.session["verdict"] == "failed"
    assert record.session["scenario_set"] == "db_race"
    assert record.session["host"] == "host-a"
    assert record.session["started_at"].timestamp() == 0.0
    assert json.loads(record.session["config"]) == {"scale": 1}


def test_a_run_in_which_nothing_ran_is_stored_as_such() -> None:
    # It was stored and listed as "passed" while the terminal and the page said NOTHING RAN.
    report = _report()
    report["verdict"] = {"ok": True, "passed": 0, "failed": 0, "not_applicable": 0}
    report["scenarios"] = [{**_db_race(), "ran": False}]
    assert run_record(report, PROVENANCE).session["verdict"] == "nothing ran"
    report["scenarios"] = [_db_race(), {**_db_race(), "name": "other", "ran": False}]
    assert run_record(report, PROVENANCE).session["verdict"] == "passed"


def test_race_events_from_leaf_tallies_and_evidence() -> None:
    rows = run_record(_report(), PROVENANCE).table("race_condition_events").rows
    counts = {(r[1], r[2]): r[3] for r in rows}
    # The run-wide tally above the strategies is not counted twice.
    assert counts[("strategies/optimistic", "detected")] == 5
    assert counts[("strategies/optimistic", "prevented")] == 5
    violations = [r for r in rows if r[2] == "violation"]
    assert [(r[3], r[4]) for r in violations] == [(1, "ledger.version_chain")] * 1 + [
        (2, "ledger.version_chain")
    ]
    assert violations[0][5] == "debit 3 overwrote debit 2"
    assert json.loads(violations[0][6])["kind"] == "lost_update"
    assert sum(r[3] for r in rows if r[2] == "detected") == 5


def test_users_operations_resources_and_isolation() -> None:
    record = run_record(_report(), PROVENANCE)
    assert record.table("concurrent_test_users").rows[0][:4] == ("db_race", 10, 20, 1)
    ops = {r[1]: r[2:4] for r in record.table("concurrent_user_operations").rows}
    assert ops == {"debit:optimistic": (20, 5), "debit:naive": (20, 0)}
    resources = {r[1]: r for r in record.table("shared_resources").rows}
    assert resources["test_accounts row (naive)"][3] == 20  # peak writers
    assert resources["test_accounts row (naive)"][8] == 3  # violations
    isolation = record.table("user_isolation_test_data").rows
    assert [(r[2], r[3]) for r in isolation] == [("isolation.threads", True)]
    assert record.table("websocket_coordination").rows == []
    metrics = record.table("performance_metrics").rows
    assert metrics[0][:4] == ("db_race", "operations", "counter", 40)


def test_scenario_set_is_order_free() -> None:
    assert scenario_set(["b", "a", "b"]) == "a,b"


def test_missing_field_is_named() -> None:
    broken = _report()
    del broken["run_id"]
    with pytest.raises(ReportShapeError, match="'run_id'"):
        run_record(broken, PROVENANCE)


def test_nul_characters_are_stored_as_their_escape_everywhere() -> None:
    value = {"a\x00": ["x\x00y", ("\x00",), {"k": "\x00\x00"}], "n": 1, "none": None}
    assert without_nul(value) == {
        "a\\x00": ["x\\x00y", ["\\x00"], {"k": "\\x00\\x00"}],
        "n": 1,
        "none": None,
    }


def test_a_trend_with_no_samples_has_null_statistics_in_older_reports_too() -> None:
    empty = Trend.from_histogram("ws_connect", LatencyHistogram()).to_dict()
    statistics = ("min", "max", "mean", "stdev", "p50", "p90", "p95", "p99", "p999")
    timed = Trend.from_histogram("ws_connect", LatencyHistogram.of([0.004, 0.006])).to_dict()
    scenarios = []
    for name, trend in (
        ("fresh", empty),
        ("older", {**empty, **dict.fromkeys(statistics, 0.0)}),  # as an older squall wrote it
        ("timed", timed),
    ):
        metrics = {"ws_connect": trend, "messages_sent": Counter("messages_sent", 0, 0.0).to_dict()}
        scenarios.append({"name": name, "metrics": metrics, "thresholds": [], "result": {}})
    record = run_record({**_report(), "scenarios": scenarios}, PROVENANCE)
    table = record.table("performance_metrics")
    columns = ("count", "min", "mean", "p50", "p90", "p95", "p99", "p999", "max", "histogram")
    rows = {
        r[0]: dict(zip(columns, (r[table.columns.index(c)] for c in columns), strict=True))
        for r in table.rows
        if r[1] == "ws_connect"
    }
    for name in ("fresh", "older"):
        assert rows[name] == {**dict.fromkeys(columns), "count": 0, "histogram": empty["encoded"]}
    assert rows["timed"]["p95"] == timed["p95"] is not None
    connect = {r[0]: r[1:3] for r in record.table("websocket_coordination").rows}
    assert connect == {"fresh": (0, None), "older": (0, None), "timed": (2, timed["p95"])}


def test_a_rate_with_no_samples_is_a_null_coordination_rate_in_older_reports_too() -> None:
    connect = Trend.from_histogram("ws_connect", LatencyHistogram.of([0.004])).to_dict()
    empty = Rate("success", 0, 0).to_dict()
    scenarios = []
    for name, rate in (
        ("fresh", empty),
        ("older", {**empty, "rate": 0.0}),  # as an older squall wrote it
        ("unknown", {"type": "rate", "name": "success", "rate": 0.0}),  # no total given
        ("failing", Rate("success", 0, 2).to_dict()),
        ("half", Rate("success", 1, 2).to_dict()),
    ):
        metrics = {"ws_connect": connect, "success": rate, "delivery": {**rate, "name": "delivery"}}
        scenarios.append({"name": name, "metrics": metrics, "thresholds": [], "result": {}})
    record = run_record({**_report(), "scenarios": scenarios}, PROVENANCE)
    table = record.table("websocket_coordination")
    delivery, success = (table.columns.index(c) for c in ("delivery_rate", "success_rate"))
    rates = {r[0]: (r[delivery], r[success]) for r in table.rows}
    assert rates == {
        "fresh": (None, None),
        "older": (None, None),
        "unknown": (None, None),
        "failing": (0.0, 0.0),  # checked, and none passed: 0 %
        "half": (0.5, 0.5),
    }
    metrics = record.table("performance_metrics")
    rate = metrics.columns.index("rate")
    # The scenario's own row of the rate says the same.
    assert {r[0]: r[rate] for r in metrics.rows if r[1] == "success"} == {
        name: success for name, (_, success) in rates.items()
    }
