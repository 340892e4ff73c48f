"""Benchmark 5: how p99 and memory grow at 1×, 4× and 16× the golden-path load.

Runs the golden-path ``websocket_concurrency`` scenario (75 users in batches of
25, 15 messages each, every run followed to completion) at growing scales
against one platform (2 workers), monitoring the platform's process group, and
records p99 response time, completed runs per second, success, and the
platform's peak RSS and average CPU for each scale. Every run is capped by a
deadline; a capped run is marked so, and what it measured is kept.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench.record import Result, command_line, log, measured, stop_if_signalled
from bench.stack import platform_stack
from bench.table import fmt_count, fmt_ms, fmt_percent, fmt_ratio, ratio
from squall.engine import run_scenario
from squall.metrics.result import RunResult
from squall.monitor import ResourceMonitor, target_group
from squall.scenarios import websocket_concurrency
from squall.scenarios.target import TargetInfo

NAME = "growth"
TITLE = "5. Cost growth: websocket_concurrency at 1×, 4×, 16× (2 workers)"


async def _one(target: TargetInfo, scale: float, cap_s: float) -> tuple[RunResult, Any]:
    scenario = websocket_concurrency.build(target, scale=scale, tag=f"growth{scale:g}")
    monitor = ResourceMonitor([target_group(list(target.pids))], interval_s=0.5)
    await monitor.start()
    try:
        result = await run_scenario(scenario, processes=1, progress=False, deadline_s=cap_s)
    finally:
        report = await monitor.stop()
    return result, report.groups["target"].stats


def run_status(interrupted_reason: str | None) -> str:
    """The table's "run" cell: "capped" only when the deadline cut the run, "completed"
    when nothing did, else the reason it was interrupted."""
    if interrupted_reason is None:
        return "completed"
    if interrupted_reason == "deadline":
        return "capped"
    return f"interrupted ({interrupted_reason})"


def run(quick: bool) -> Result:
    result = Result(NAME, TITLE, quick, command_line(NAME, quick))
    scales = (1.0, 4.0) if quick else (1.0, 4.0, 16.0)
    cap_s = 60.0 if quick else 150.0
    rows: list[list[str]] = []
    base: dict[str, Any] | None = None
    with platform_stack(workers=2) as stack:
        for scale in scales:
            users = websocket_concurrency.USERS * scale
            log(f"growth: {scale:g}× ({users:.0f} users × 15 messages), cap {cap_s:g} s")
            entry: dict[str, Any] = {"scale": scale, "cap_s": cap_s}
            with measured(entry):
                run_result, stats = asyncio.run(_one(stack.target, scale, cap_s))
            stop_if_signalled(f"growth: {scale:g}×", run_result.interrupted_reason)
            response = run_result.trend("response_time")
            success = run_result.rate("success").rate if "success" in run_result.metrics else None
            entry.update(
                {
                    "users": run_result.workload.get("users"),
                    "duration_s": run_result.duration_s,
                    "interrupted": run_result.interrupted_reason,
                    "runs": response.count,
                    "runs_per_s": response.count / run_result.duration_s
                    if run_result.duration_s
                    else None,
                    "p50_s": response.p50,
                    "p99_s": response.p99,
                    "success": success,
                    "errors": run_result.count("errors"),
                    "error_samples": [e.to_dict() for e in run_result.errors],
                    "timeouts": run_result.count("timeouts"),
                    "planned_runs": int(run_result.workload.get("users") or 0)
                    * websocket_concurrency.MESSAGES,
                    "target_peak_rss_mb": stats.peak_mb,
                    "target_start_rss_mb": stats.start_mb,
                    "target_cpu_avg_percent": stats.cpu_avg_percent,
                    "generator": run_result.generator.to_dict(),
                }
            )
            result.measurements.append(entry)
            log(
                f"  {entry['runs']} runs in {entry['duration_s']:.1f} s, p99 "
                f"{fmt_ms(entry['p99_s'])}, peak RSS {stats.peak_mb:.0f} MB"
                + (f", {run_status(entry['interrupted'])}" if entry["interrupted"] else "")
            )
            if base is None:
                base = entry
            rows.append(
                [
                    f"{scale:g}×",
                    str(entry["users"]),
                    fmt_count(entry["runs"]),
                    fmt_count(entry["runs_per_s"]),
                    fmt_ms(entry["p99_s"]),
                    fmt_ratio(ratio(entry["p99_s"], base["p99_s"])),
                    f"{stats.peak_mb:.0f} MB",
                    f"{stats.cpu_avg_percent:.0f} %",
                    fmt_percent(success),
                    str(entry["timeouts"]),
                    str(entry["errors"]),
                    run_status(entry["interrupted"]),
                ]
            )
    result.table = {
        "columns": [
            "scale",
            "users",
            "runs",
            "runs / s",
            "p99 response",
            "p99 vs 1×",
            "platform peak RSS",
            "platform CPU (avg, % of a core)",
            "success",
            "timeouts",
            "errors",
            "run",
        ],
        "rows": rows,
    }
    if quick:
        result.notes.append("quick run: 16× left out.")
    result.notes += [
        "response = user_message sent → agent_completed received, closed model (each user "
        "waits for its run before the next message), squall engine in one process.",
        f"every scale is capped at {cap_s:g} s; a capped run was cut at the deadline and "
        "its remaining messages are not counted; runs / s = completed runs / run time, so a "
        "run held open by a few users waiting out 30 s timeouts shows a lower rate.",
        "timeouts: messages whose run did not complete within 30 s (each holds its user "
        "for the whole 30 s); errors: errors recorded by the client (connects, server errors).",
        "client, platform (2 workers), PostgreSQL and Redis share 2 cores; the platform's "
        "CPU column is in % of one core, out of 200 % on this machine.",
    ]
    return result
