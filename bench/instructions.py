"""Benchmark 1b: instructions per round trip of squall and the bare picows loop, counted.

Round trips per CPU-second (benchmark 1) move by up to a fifth between runs on a
shared host, more than most changes to the engine are worth. Instruction counts do
not: ``valgrind --tool=callgrind`` counts every user-space instruction a client
executes, the same for the same code and inputs whatever else the machine does.

Each client runs twice against the echo server at each socket count, with
:data:`SHORT` and then :data:`LONG` round trips per socket (``python -m
bench.clients KIND --round-trips K``); the difference of the two counts divided by
the difference of their round trips is the client's instructions per round trip,
start-up, connecting and teardown cancelled out. squall's once-a-second work
(snapshot, loop-lag probe) is paced out of these runs, since valgrind stretches
every second some fifty-fold and it would be charged to the round trips. The
kernel's work (the ``sendto`` and ``recvfrom`` of every round trip, most of a
round trip's time) is not counted: the ratio here is of the Python side only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.clients import command, read_report
from bench.echo import start_echo
from bench.record import Result, command_line, log, measured, server_and_client_cpus
from bench.table import fmt_count, fmt_ratio, ratio

NAME = "instructions"
TITLE = "1b. Engine instructions per round trip (callgrind, the Python side only)"
CLIENTS = ("bare-tasks", "squall")
LABELS = {"bare-tasks": "bare picows loop", "squall": "squall engine"}
#: Round trips per socket of the short and the long run; their difference is measured.
SHORT = 5
LONG = 25
#: Events read from callgrind's totals: instructions, and with the cache simulator
#: (``--cache-sim=yes``) first-level data-cache read misses.
EVENTS = ("Ir", "D1mr")
#: Seconds one run under valgrind may take.
RUN_TIMEOUT_S = 1800.0


class CallgrindError(ValueError):
    """A callgrind output file without the totals this benchmark reads."""


def callgrind_totals(text: str) -> dict[str, int]:
    """The event totals of a callgrind output file: ``{"Ir": …, "D1mr": …, …}``.

    The file names its events on an ``events:`` line and totals them on a
    ``totals:`` (or older ``summary:``) line, in the same order.
    """
    names: list[str] | None = None
    values: list[int] | None = None
    for line in text.splitlines():
        if line.startswith("events:"):
            names = line.split(":", 1)[1].split()
        elif line.startswith(("totals:", "summary:")):
            values = [int(v) for v in line.split(":", 1)[1].split()]
    if names is None or values is None:
        raise CallgrindError(
            "no 'events:' or 'totals:' line: not a callgrind output file, or valgrind "
            "stopped before writing it"
        )
    return dict(zip(names, values, strict=False))


@dataclass(frozen=True)
class Count:
    """One counted run: its round trips and callgrind's event totals."""

    round_trips: int
    totals: Mapping[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {"round_trips": self.round_trips, "totals": dict(self.totals)}


def per_round_trip(short: Count, long: Count, event: str = "Ir") -> float | None:
    """``event`` per round trip: the long run's extra count over its extra round trips."""
    extra = long.round_trips - short.round_trips
    if extra <= 0 or event not in short.totals or event not in long.totals:
        return None
    return (long.totals[event] - short.totals[event]) / extra


def _count(kind: str, url: str, sockets: int, per_socket: int, cpu: int | None) -> Count:
    """Run one client under callgrind to completion; its round trips and totals."""
    with tempfile.TemporaryDirectory(prefix="squall-bench-callgrind-") as tmp:
        out = Path(tmp) / "callgrind.out"
        argv = [
            "valgrind",
            "--tool=callgrind",
            "--cache-sim=yes",
            f"--callgrind-out-file={out}",
            *command(kind, url, sockets, "--round-trips", str(per_socket), cpu),
        ]
        # A fixed hash seed: dict and set layouts, and so the instructions, repeat.
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        done = subprocess.run(
            argv, env=env, capture_output=True, timeout=RUN_TIMEOUT_S, check=False
        )
        if done.returncode != 0 or not out.exists():
            raise RuntimeError(
                f"{kind} under callgrind failed (exit {done.returncode}):\n"
                f"{done.stderr.decode(errors='replace')[-2000:]}"
            )
        parsed = read_report(done.stdout)
        if parsed.get("errors"):
            raise RuntimeError(f"{kind} counted {parsed['errors']} error(s): {str(parsed)[:500]}")
        return Count(int(parsed["round_trips"]), callgrind_totals(out.read_text()))


def _count_both(kind: str, url: str, sockets: int, cpu: int | None) -> tuple[Count, Count]:
    """The short and then the long run, each pinned to ``cpu`` while the echo server has its
    own core: how many replies a poll of the event loop finds ready, and so the loop's
    instructions per round trip, depends on the server keeping up."""
    return _count(kind, url, sockets, SHORT, cpu), _count(kind, url, sockets, LONG, cpu)


def run(quick: bool) -> Result:
    result = Result(NAME, TITLE, quick, command_line(NAME, quick))
    if shutil.which("valgrind") is None:
        result.notes.append(
            "not measured: valgrind is not installed (Debian: apt-get install valgrind; "
            "`make bench` installs it when run as root)"
        )
        log("instructions: valgrind not found, skipped")
        return result
    socket_counts = (100,) if quick else (100, 1000)
    server_cpu, client_cpu = server_and_client_cpus()
    echo, url = start_echo(server_cpu)
    figures: dict[tuple[str, int], dict[str, float | None]] = {}
    try:
        for sockets in socket_counts:
            for kind in CLIENTS:
                entry: dict[str, Any] = {"client": kind, "sockets": sockets}
                log(f"instructions: {LABELS[kind]}, {sockets} sockets, {SHORT} and {LONG} each")
                with measured(entry):
                    try:
                        short, long = _count_both(kind, url, sockets, client_cpu)
                    except (RuntimeError, CallgrindError, subprocess.TimeoutExpired) as exc:
                        entry["error"] = str(exc)
                if "error" in entry:
                    log(f"  failed: {entry['error'][:300]}")
                else:
                    entry["short"], entry["long"] = short.to_dict(), long.to_dict()
                    figures[kind, sockets] = {e: per_round_trip(short, long, e) for e in EVENTS}
                    entry["per_round_trip"] = figures[kind, sockets]
                    log(f"  {fmt_count(figures[kind, sockets]['Ir'])} instructions / round trip")
                result.measurements.append(entry)
    finally:
        echo.stop()
    _table(result, figures, socket_counts)
    result.notes.append(
        f"instructions / round trip = (count of a run of {LONG} round trips per socket − count "
        f"of one of {SHORT}) / the extra round trips, under valgrind --tool=callgrind "
        "--cache-sim=yes with PYTHONHASHSEED=0; user space only. The kernel's part of a round "
        "trip (one sendto, one recvfrom for every client) is not counted, so the ratio here "
        "is of the Python side and well below the rate ratio of benchmark 1."
    )
    result.notes.append(
        "The counted round trips start once every socket is open (squall: iteration 0 of each "
        "user connects and waits at a barrier; then one ws.request_text per iteration, on one "
        "worker whose snapshot and loop-lag intervals outlast the run, since their work is "
        "paced by the clock, which valgrind slows). Echo server and client each pinned to a "
        "core, as in benchmark 1. Counts move by up to ~5 % between runs (timers fire by the "
        "clock; how many replies a poll finds ready varies); D1 read misses come from "
        "valgrind's cache model, not the host's caches."
    )
    return result


def _table(
    result: Result,
    figures: Mapping[tuple[str, int], Mapping[str, float | None]],
    counts: tuple[int, ...],
) -> None:
    rows: list[list[str]] = []
    for sockets in counts:
        base = figures.get(("bare-tasks", sockets), {}).get("Ir")
        for kind in CLIENTS:
            mine = figures.get((kind, sockets), {})
            rows.append(
                [
                    str(sockets),
                    LABELS[kind],
                    fmt_count(mine.get("Ir")),
                    fmt_count(mine.get("D1mr")),
                    fmt_ratio(ratio(mine.get("Ir"), base)),
                ]
            )
    result.table = {
        "columns": [
            "sockets",
            "client",
            "instructions / round trip",
            "D1 read misses / round trip",
            "instructions vs bare loop",
        ],
        "rows": rows,
    }
