"""Hand-written report.json dictionaries for the report and store tests."""

from __future__ import annotations

from typing import Any

from squall.metrics.histogram import LatencyHistogram
from squall.metrics.result import Counter, Gauge, Rate, Trend


def load_scenario(name: str = "websocket_concurrency", *, failed: bool = False) -> dict[str, Any]:
    histogram = LatencyHistogram.of([0.050, 0.060, 0.080, 0.120, 0.400])
    metrics = {
        "response_time": Trend.from_histogram("response_time", histogram).to_dict(),
        "messages_sent": Counter("messages_sent", 50, 10.0).to_dict(),
        "success": Rate("success", 48, 50).to_dict(),
        "users": Gauge("users", 5.0, 0.0, 5.0).to_dict(),
    }
    thresholds = [
        {
            "scenario": name,
            "metric": "response_time",
            "expression": "p(95) <= 0.2s",
            "status": "failed" if failed else "passed",
            "diagnostic": f"[{name}] response_time p(95) = 400ms, limit <= 200ms: "
            + ("FAILED" if failed else "ok"),
        },
        {
            "scenario": name,
            "metric": "ws_connect",
            "expression": "p(95) <= 5s",
            "status": "not_applicable",
            "diagnostic": f"[{name}] ws_connect: not applicable",
        },
    ]
    series = [
        {"t": t, "users": 5, "sent_per_s": 10.0 + t, "received_per_s": 20.0, "p50": 0.06,
         "p99": 0.3 + t / 10, "errors": 0}
        for t in range(5)
    ]  # fmt: skip
    return {
        "name": name,
        "duration_s": 5.0,
        "verdict": "failed" if failed else "passed",
        "metrics": metrics,
        "thresholds": thresholds,
        "notes": ["a note with <angle> brackets"],
        "result": {
            "scenario": name,
            "workload": {"model": "closed", "users": 5},
            "processes": 1,
            "series": series,
            "errors": [],
        },
        "monitor": {
            "interval_s": 1.0,
            "cpu_count": 2,
            "groups": {
                "target": {
                    "name": "target",
                    "stats": {},
                    "series": [
                        {
                            "t": float(t),
                            "rss_mb": 100.0 + t,
                            "cpu_percent": 30.0,
                            "threads": 4,
                            "open_files": 9,
                            "sockets": 3,
                            "processes": 2,
                        }
                        for t in range(4)
                    ],
                    "pids": [1],
                    "stride": 1,
                    "denied": 0,
                }
            },
        },
        "table": None,
    }


def race_scenario() -> dict[str, Any]:
    evidence = {
        "kind": "overlap",
        "message": "c0 and c1 both held the lock",
        "ops": [],
        "details": {"overlap_ns": 5},
    }
    lock = {
        "scenario": "redis_locks",
        "contenders": 4,
        "ttl_ms": 100,
        "acquired": 4,
        "contended_acquires": 3,
        "writes_accepted": 8,
        "writes_rejected": 0,
        "releases_lost": 1,
        "tally": {"detected": 4, "prevented": 3, "unprevented": 1, "violations": 1},
        "verdict": {
            "checker": "locks",
            "valid": False,
            "summary": "1 violation(s): overlap",
            "counts": {"violations": 1},
            "evidence": [evidence],
        },
    }
    return {
        "name": "redis_locks",
        "duration_s": 0.3,
        "verdict": "passed",
        "metrics": {
            "violations": Gauge("violations", 0.0, 0.0, 0.0).to_dict(),
            "operations": Counter("operations", 12, None).to_dict(),  # no rate: a race
        },
        "thresholds": [],
        "notes": [],
        "result": {"unfenced": {**lock, "fencing": False}},
        "monitor": None,
        "table": {"columns": ["fencing", "acquired"], "rows": [["off", "4"]]},
    }


def report(*scenarios: dict[str, Any], run_id: str = "20260101-000000-abcd") -> dict[str, Any]:
    failed = sum(1 for s in scenarios for t in s["thresholds"] if t["status"] == "failed")
    passed = sum(1 for s in scenarios for t in s["thresholds"] if t["status"] == "passed")
    return {
        "schema": "squall.report/1",
        "run_id": run_id,
        "started_at": 1_767_225_600.0,
        "finished_at": 1_767_225_610.0,
        "interrupted": False,
        "verdict": {"ok": failed == 0, "passed": passed, "failed": failed, "not_applicable": 1},
        "config": {"scenarios": [s["name"] for s in scenarios], "scale": 0.1},
        "scenarios": list(scenarios),
    }
