"""Benchmark 1: round trips per second per client core — squall, Locust, a bare picows loop.

One picows echo server is pinned to CPU 0; every client keeps one 64-byte
message in flight on each of N sockets (100 and 1,000). The clients of a round
run at once, all pinned to CPU 1, taking turns on it (:mod:`bench.turns`), so
the machine's slow spells land on each alike. The steady-state window starts
after a warm-up (connecting, spawning); the figure is round trips per
CPU-second of the client process in that window ("per client core").
Goal: squall ≥ 3× Locust and ≥ 70 % of the bare loop.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.clients import command, read_report
from bench.echo import start_echo
from bench.record import (
    Result,
    command_line,
    log,
    measured,
    server_and_client_cpus,
)
from bench.table import (
    Goal,
    Window,
    WindowError,
    fmt_count,
    fmt_ratio,
    median,
    round_ratios,
    window,
)
from bench.turns import TURN_S, take_turns
from squall.fdlimit import raise_open_files
from squall.services.process import child_setup

NAME = "engine"
#: Rounds per socket count in a full run; each round runs every client once.
ROUNDS = 5
TITLE = "1. Engine efficiency: round trips per client core (echo server on its own core)"
KINDS = ("bare", "bare-tasks", "squall", "squall-json", "squall-loop", "locust")
LABELS = {
    "bare": "bare picows callbacks (ceiling)",
    "bare-tasks": "bare picows loop",
    "squall": "squall engine",
    "squall-json": "squall engine, JSON request",
    "squall-loop": "squall engine, 100 requests / iteration",
    "locust": "Locust + websocket-client",
}


def _launch(
    kind: str, url: str, sockets: int, duration: float, cpu: int | None, workdir: Path
) -> subprocess.Popen[bytes]:
    """Start client ``kind`` for ``duration`` seconds, its output to files in ``workdir``."""
    env = None
    if kind == "locust":
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
        env = {**os.environ, "BENCH_SAMPLES_PATH": str(workdir / f"{kind}.samples.json")}
    else:
        argv = command(kind, url, sockets, "--duration", f"{duration:g}", cpu)
    with (workdir / f"{kind}.out").open("wb") as out, (workdir / f"{kind}.err").open("wb") as err:
        # squall.services' parent-death setup: the client is killed when this process dies
        # (SIGKILL, which also ends a client held stopped between its turns, where SIGTERM
        # would wait for a SIGCONT that never comes).
        return subprocess.Popen(
            argv, stdout=out, stderr=err, env=env, preexec_fn=child_setup(signal.SIGKILL)
        )


def _report(kind: str, process: subprocess.Popen[bytes], workdir: Path) -> dict[str, Any]:
    """The report of client ``kind``, which has exited; RuntimeError naming what failed."""
    stderr = (workdir / f"{kind}.err").read_bytes().decode(errors="replace")[-2000:]
    if kind == "locust":
        samples_path = workdir / f"{kind}.samples.json"
        if not samples_path.exists():
            raise RuntimeError(f"locust wrote no samples (exit {process.returncode}):\n{stderr}")
        report: dict[str, Any] = json.loads(samples_path.read_text())
        report["exit_code"] = process.returncode
        return report
    if process.returncode != 0:
        raise RuntimeError(f"client {kind} failed (exit {process.returncode}):\n{stderr}")
    return read_report((workdir / f"{kind}.out").read_bytes())


def _round(
    kinds: tuple[str, ...],
    sockets: int,
    duration: float,
    warmup: float,
    url: str,
    cpus: tuple[int | None, int | None],
    round_no: int,
) -> list[tuple[dict[str, Any], Window | None]]:
    """One round: every client at once on the client core, taking turns (bench.turns)."""
    server_cpu, client_cpu = cpus
    log(
        f"engine: round {round_no + 1}, {sockets} sockets, {len(kinds)} clients taking "
        f"{TURN_S:g} s turns for {duration:g} s"
    )
    results: list[tuple[dict[str, Any], Window | None]] = []
    # Load average before and after, and the wall time: the round's, shared by its clients.
    taken: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="squall-bench-engine-") as tmp:
        workdir = Path(tmp)
        processes: dict[str, subprocess.Popen[bytes]] = {}
        with measured(taken):
            try:
                for kind in kinds:
                    processes[kind] = _launch(kind, url, sockets, duration, client_cpu, workdir)
                taken["turns"] = take_turns(list(processes.values()), limit_s=duration + 120.0)
            except BaseException:
                # Interrupted (Ctrl-C, or SIGTERM / SIGHUP, which python -m bench turns
                # into KeyboardInterrupt): nothing of the round is kept, so the clients
                # (continued by take_turns) are not waited for.
                for process in processes.values():
                    if process.poll() is None:
                        process.kill()
                raise
            finally:
                for process in processes.values():
                    try:
                        process.wait(timeout=30.0)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()
        for kind in kinds:
            entry: dict[str, Any] = {
                "client": kind,
                "sockets": sockets,
                "round": round_no + 1,
                "duration_s": duration,
                "warmup_s": warmup,
                "turn_s": TURN_S,
                "clients_taking_turns": len(kinds),
                "server_cpu": server_cpu,
                "client_cpu": client_cpu,
                "payload_bytes": 64,
                **taken,
            }
            measured_window: Window | None = None
            try:
                report = _report(kind, processes[kind], workdir)
            except (RuntimeError, ValueError, OSError) as exc:
                entry["error"] = str(exc)
            else:
                entry["report"] = report
                try:
                    measured_window = window(report["samples"], warmup)
                except WindowError as exc:
                    entry["error"] = str(exc)
                else:
                    entry["window"] = measured_window.to_dict()
                    log(
                        f"  {LABELS[kind]}: {measured_window.per_core:,.0f} rt per CPU-second "
                        f"({measured_window.cpu_s:.1f} CPU-s in the window)"
                    )
            if "error" in entry:
                log(f"  {LABELS[kind]} failed: {entry['error'][:300]}")
            results.append((entry, measured_window))
    return results


def run(quick: bool) -> Result:
    result = Result(NAME, TITLE, quick, command_line(NAME, quick))
    socket_counts = (100, 1000)
    # Each client runs for a warm-up, then its share of the window: with six clients
    # taking turns, a 48 s run gives each about 6 s of CPU after 12 s of warm-up.
    warmup = 12.0
    duration = warmup + len(KINDS) * (2.0 if quick else 6.0)
    rounds = 1 if quick else ROUNDS
    cpus = server_and_client_cpus()
    server_cpu, client_cpu = cpus
    if server_cpu is None:
        result.notes.append("fewer than 2 CPUs available: server and client were not pinned")
    # Every client of a round holds its sockets open at once, and the echo server serves
    # them all (it inherits this limit).
    raise_open_files(len(KINDS) * max(socket_counts) + 1024)
    echo, url = start_echo(server_cpu)
    windows: dict[tuple[str, int], list[Window | None]] = {}
    try:
        for sockets in socket_counts:
            for round_no in range(rounds):
                # The first turn goes to a different client each round.
                shift = round_no % len(KINDS)
                kinds = KINDS[shift:] + KINDS[:shift]
                for entry, measured_window in _round(
                    kinds, sockets, duration, warmup, url, cpus, round_no
                ):
                    windows.setdefault((entry["client"], sockets), [None] * rounds)[round_no] = (
                        measured_window
                    )
                    result.measurements.append(entry)
    finally:
        echo.stop()
    _table(result, windows, socket_counts)
    result.notes.append(
        f"echo server pinned to CPU {server_cpu}; all {len(KINDS)} clients of a round run at "
        f"once, pinned to CPU {client_cpu}, taking turns of {TURN_S:g} s (the others stopped "
        f"with SIGSTOP), so a slow spell of the shared machine lands on every client alike; "
        f"{rounds} round(s) per socket count, each client running {duration:g} s of wall "
        f"clock (about {(duration - warmup) / len(KINDS):g} s of it its own turns after the "
        f"warm-up), the first {warmup:g} s (connect, spawn) excluded."
    )
    result.notes.append(
        "per core = round trips / CPU-seconds of the client process in the window (a stopped "
        "process uses none, so this is the rate of its own turns), the median over the "
        "rounds; 'vs' columns and goals are the median of the per-round ratios. CPU µs / "
        "round trip splits the same CPU time into the client's user time "
        "(Python, the event loop) and system time (mostly the kernel's loopback TCP send and "
        "receive, the same work for every client, whose cost moves with the host: the more "
        "of a round trip it takes, the closer every client gets to the bare loop). squall "
        "runs one worker process (processes=1), each iteration one "
        "ws.request_text of the same 64 bytes every client sends (send, wait, round trip "
        "into an HdrHistogram, counters, success rate, timeout); the goals use that "
        "one-request-per-iteration figure. 'JSON request': ws.request instead, which also "
        "encodes the message from a dict and parses the reply into one (orjson). Wall-clock "
        "rates and latencies are not shown: each client waits out the others' turns."
    )
    result.notes.append(
        "bare picows loop: a task per socket that sends 64 bytes and awaits a future the "
        "frame callback resolves — the smallest asyncio client loop, with no JSON, timing or "
        "error handling. bare picows callbacks: the reply is sent from picows' frame callback "
        "itself, no task or future at all — the ceiling for Python on picows, which no "
        "client that awaits replies in a coroutine can approach. Both bare clients run with "
        "the garbage collector threshold the engine sets while it runs (the youngest "
        "generation every 10,000 allocations), so neither pays collections the engine avoids."
    )
    return result


def _round_ratios(
    windows: dict[tuple[str, int], list[Window | None]], kind: str, base: str, sockets: int
) -> tuple[float | None, ...]:
    """``kind``'s per-core rate over ``base``'s, round by round (None where either failed)."""
    ours = [w.per_core if w else None for w in windows.get((kind, sockets), [])]
    theirs = [w.per_core if w else None for w in windows.get((base, sockets), [])]
    return round_ratios(ours, theirs)


def _per_round_ratio(
    windows: dict[tuple[str, int], list[Window | None]], kind: str, base: str, sockets: int
) -> float | None:
    """The median over rounds of ``kind``'s per-core rate over ``base``'s in the same round."""
    return median(list(_round_ratios(windows, kind, base, sockets)))


def _goal(
    windows: dict[tuple[str, int], list[Window | None]],
    base: str,
    sockets: int,
    name: str,
    target: float,
    unit: str,
) -> Goal:
    """squall's per-round ratio to ``base`` against ``target``: the median and each round."""
    rounds = _round_ratios(windows, "squall", base, sockets)
    return Goal(name, median(list(rounds)), target, unit=unit, rounds=rounds)


def _fmt_split(runs: list[Window | None]) -> str:
    """Median user and system CPU µs per round trip over the rounds, as "user + system"."""
    user = median([w.user_us if w else None for w in runs])
    system = median([w.system_us if w else None for w in runs])
    if user is None or system is None:
        return "—"
    return f"{user:.1f} + {system:.1f}"


def _table(
    result: Result,
    windows: dict[tuple[str, int], list[Window | None]],
    counts: tuple[int, ...],
) -> None:
    rows: list[list[str]] = []
    for sockets in counts:
        for kind in KINDS:
            runs = windows.get((kind, sockets), [])
            rows.append(
                [
                    str(sockets),
                    LABELS[kind],
                    fmt_count(median([w.per_core if w else None for w in runs])),
                    _fmt_split(runs),
                    fmt_ratio(_per_round_ratio(windows, kind, "bare-tasks", sockets)),
                    fmt_ratio(_per_round_ratio(windows, kind, "bare", sockets)),
                ]
            )
        result.goals.append(
            _goal(
                windows, "locust", sockets, f"squall vs Locust, {sockets} sockets", 3.0, "×"
            ).to_dict()
        )
        result.goals.append(
            _goal(
                windows,
                "bare-tasks",
                sockets,
                f"squall vs bare picows loop, {sockets} sockets",
                0.70,
                "%",
            ).to_dict()
        )
    result.table = {
        "columns": [
            "sockets",
            "client",
            "round trips / s per client core",
            "CPU µs / round trip (user + system)",
            "vs bare loop",
            "vs bare callbacks",
        ],
        "rows": rows,
    }
