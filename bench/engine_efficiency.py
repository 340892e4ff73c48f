"""Benchmark 1: round trips per second per client core — squall, Locust, a bare picows loop.

One picows echo server is pinned to CPU 0; each client in turn is pinned to
CPU 1 and keeps one 64-byte message in flight on each of N sockets (100 and
1,000). The steady-state window starts after a warm-up (connecting, spawning);
the figure is round trips per CPU-second of the client process in that window
("per client core"), with the wall-clock rate and the client's CPU share beside
it. Goal: squall ≥ 3× Locust and ≥ 70 % of the bare loop.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.echo import start_echo
from bench.record import Result, command_line, log, measured
from bench.table import (
    Goal,
    Window,
    WindowError,
    fmt_count,
    fmt_ms,
    fmt_percent,
    fmt_ratio,
    ratio,
    window,
)

NAME = "engine"
TITLE = "1. Engine efficiency: round trips per client core (echo server on its own core)"
KINDS = ("bare", "squall", "squall-loop", "locust")
LABELS = {
    "bare": "bare picows loop",
    "squall": "squall engine",
    "squall-loop": "squall engine, 100 requests / iteration",
    "locust": "Locust + websocket-client",
}


def _cpus() -> tuple[int | None, int | None]:
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return None, None
    return available[0], available[1]


def _client(kind: str, url: str, sockets: int, duration: float, cpu: int | None) -> dict[str, Any]:
    """Run one client to completion (bounded by a timeout) and return its report."""
    limit = duration + 120.0
    if kind == "locust":
        with tempfile.TemporaryDirectory(prefix="squall-bench-locust-") as tmp:
            samples_path = Path(tmp) / "samples.json"
            argv = [
                sys.executable,
                "-m",
                "bench.locust_run",
                "none" if cpu is None else str(cpu),
                "-f",
                str(Path(__file__).with_name("locustfile.py")),
                "--headless",
                "--only-summary",
                "--users",
                str(sockets),
                "--spawn-rate",
                str(sockets),
                "--run-time",
                f"{duration:g}s",
                "--host",
                url,
                "--loglevel",
                "WARNING",
            ]
            env = {**os.environ, "BENCH_SAMPLES_PATH": str(samples_path)}
            done = subprocess.run(argv, env=env, capture_output=True, timeout=limit, check=False)
            if not samples_path.exists():
                raise RuntimeError(
                    f"locust wrote no samples (exit {done.returncode}):\n"
                    f"{done.stderr.decode(errors='replace')[-2000:]}"
                )
            report: dict[str, Any] = json.loads(samples_path.read_text())
            report["exit_code"] = done.returncode
            return report
    argv = [
        sys.executable,
        "-m",
        "bench.clients",
        kind,
        "--url",
        url,
        "--sockets",
        str(sockets),
        "--duration",
        f"{duration:g}",
    ]
    if cpu is not None:
        argv += ["--cpu", str(cpu)]
    done = subprocess.run(argv, capture_output=True, timeout=limit, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"client {kind} failed (exit {done.returncode}):\n"
            f"{done.stderr.decode(errors='replace')[-2000:]}"
        )
    parsed: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return parsed


def run(quick: bool) -> Result:
    result = Result(NAME, TITLE, quick, command_line(NAME, quick))
    socket_counts = (100, 1000)
    duration = 5.0 if quick else 10.0
    warmup = 2.0 if quick else 3.0
    server_cpu, client_cpu = _cpus()
    if server_cpu is None:
        result.notes.append("fewer than 2 CPUs available: server and client were not pinned")
    echo, url = start_echo(server_cpu)
    windows: dict[tuple[str, int], Window] = {}
    try:
        for sockets in socket_counts:
            for kind in KINDS:
                log(f"engine: {LABELS[kind]}, {sockets} sockets, {duration:g} s")
                entry: dict[str, Any] = {
                    "client": kind,
                    "sockets": sockets,
                    "duration_s": duration,
                    "warmup_s": warmup,
                    "server_cpu": server_cpu,
                    "client_cpu": client_cpu,
                    "payload_bytes": 64,
                }
                with measured(entry):
                    try:
                        report = _client(kind, url, sockets, duration, client_cpu)
                    except (RuntimeError, subprocess.TimeoutExpired) as exc:
                        entry["error"] = str(exc)
                        report = None
                if report is not None:
                    entry["report"] = report
                    try:
                        measured_window = window(report["samples"], warmup)
                    except WindowError as exc:
                        entry["error"] = str(exc)
                    else:
                        windows[(kind, sockets)] = measured_window
                        entry["window"] = measured_window.to_dict()
                        log(
                            f"  {measured_window.rate:,.0f} rt/s, "
                            f"{measured_window.cpu_fraction * 100:.0f} % CPU, "
                            f"{measured_window.per_core:,.0f} rt per CPU-second"
                        )
                if "error" in entry:
                    log(f"  failed: {entry['error'][:300]}")
                result.measurements.append(entry)
    finally:
        echo.stop()
    _table(result, windows, socket_counts)
    result.notes.append(
        f"echo server pinned to CPU {server_cpu}, each client pinned to CPU {client_cpu}; "
        f"{duration:g} s per run, the first {warmup:g} s (connect, spawn) excluded."
    )
    result.notes.append(
        "per core = round trips / CPU-seconds of the client process in the window; "
        "squall runs one worker process (processes=1), each iteration one ws.request "
        "(JSON encode, send, wait, JSON parse, HdrHistogram record); the goals use that "
        "one-request-per-iteration figure."
    )
    return result


def _table(result: Result, windows: dict[tuple[str, int], Window], counts: tuple[int, ...]) -> None:
    rows: list[list[str]] = []
    for sockets in counts:
        bare = windows.get(("bare", sockets))
        for kind in KINDS:
            w = windows.get((kind, sockets))
            rows.append(
                [
                    str(sockets),
                    LABELS[kind],
                    fmt_count(w.per_core if w else None),
                    fmt_count(w.rate if w else None),
                    fmt_percent(w.cpu_fraction if w else None),
                    fmt_ratio(ratio(w.per_core if w else None, bare.per_core if bare else None)),
                ]
            )
        squall, locust = windows.get(("squall", sockets)), windows.get(("locust", sockets))
        squall_core = squall.per_core if squall else None
        result.goals.append(
            Goal(
                f"squall vs Locust, {sockets} sockets",
                ratio(squall_core, locust.per_core if locust else None),
                3.0,
            ).to_dict()
        )
        result.goals.append(
            Goal(
                f"squall vs bare loop, {sockets} sockets",
                ratio(squall_core, bare.per_core if bare else None),
                0.70,
                unit="%",
            ).to_dict()
        )
    for entry in result.measurements:
        report = entry.get("report") or {}
        if entry["client"].startswith("squall") and "round_trip_p99_s" in report:
            result.notes.append(
                f"{LABELS[entry['client']]}, {entry['sockets']} sockets: round trip p50 "
                f"{fmt_ms(report['round_trip_p50_s'])}, p99 {fmt_ms(report['round_trip_p99_s'])}"
            )
    result.table = {
        "columns": [
            "sockets",
            "client",
            "round trips / s per client core",
            "round trips / s",
            "client CPU",
            "vs bare loop",
        ],
        "rows": rows,
    }
