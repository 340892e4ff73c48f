"""What every benchmark result carries: the machine, versions, load and how to reproduce it.

A figure without its context cannot be judged, so each result file records the
CPU, the versions of everything measured, the load average before and after
(other work on a shared machine shows up there), the CPU pinning of each
process, and the exact command that reproduces it.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SCHEMA = "squall.bench/1"
_PACKAGES = (
    "squall",
    "picows",
    "uvloop",
    "locust",
    "websocket-client",
    "gevent",
    "asyncpg",
    "redis",
    "uvicorn",
    "starlette",
)


def versions() -> dict[str, str]:
    found: dict[str, str] = {}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = ""
    return found


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "versions": versions(),
        "commit": source_commit(),
        "nofile_limit": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
    }


def source_commit() -> str | None:
    """The git commit of the code measured, ``+changes`` when the tree differs from it;
    None outside a git checkout. Every result names its squall version alike, so the
    commit is what tells two results' code apart."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            [
                "git",
                "-C",
                str(root),
                "status",
                "--porcelain",
                "--untracked-files=normal",
                "--",
                "src",
                "bench",
                ":(exclude)bench/results",
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+changes" if changed else head


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def cpu_seconds() -> float:
    """CPU time (user + system) of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def user_cpu_seconds() -> float:
    """User CPU time of this process so far (the rest of :func:`cpu_seconds` is the kernel's)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_utime


def pin(cpu: int | None) -> list[int]:
    """Pin this process (and every thread and child it starts later) to ``cpu``.

    Returns the CPUs the process may run on afterwards. ``None`` leaves it unpinned.
    """
    if cpu is not None:
        available = sorted(os.sched_getaffinity(0))
        if cpu not in available:
            raise ValueError(f"cannot pin to CPU {cpu}: this process may use CPUs {available}")
        os.sched_setaffinity(0, {cpu})
    return sorted(os.sched_getaffinity(0))


def server_and_client_cpus() -> tuple[int | None, int | None]:
    """The first two CPUs this process may use, one for a server and one for its client;
    ``(None, None)`` (leave both unpinned) when there are fewer than two."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return None, None
    return available[0], available[1]


@contextmanager
def measured(into: dict[str, Any]) -> Iterator[None]:
    """Record load average before and after, and the wall time, into ``into``."""
    into["loadavg_before"] = loadavg()
    began = time.monotonic()
    try:
        yield
    finally:
        into["loadavg_after"] = loadavg()
        into["wall_s"] = round(time.monotonic() - began, 3)


@dataclass
class Result:
    """One benchmark's result file, built up as it runs."""

    benchmark: str
    title: str
    quick: bool
    command: str
    measurements: list[dict[str, Any]] = field(default_factory=list)
    table: dict[str, Any] = field(default_factory=dict)
    goals: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    started_at: str = field(default_factory=now_iso)
    _began: float = field(default_factory=time.monotonic)
    _load_before: list[float] = field(default_factory=loadavg)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "benchmark": self.benchmark,
            "title": self.title,
            "quick": self.quick,
            "command": self.command,
            "started_at": self.started_at,
            "finished_at": now_iso(),
            "duration_s": round(time.monotonic() - self._began, 1),
            "loadavg": {"before": self._load_before, "after": loadavg()},
            "environment": environment(),
            "measurements": self.measurements,
            "table": self.table,
            "goals": self.goals,
            "notes": self.notes,
        }


def result_path(benchmark: str, quick: bool, directory: Path = RESULTS_DIR) -> Path:
    suffix = ".quick" if quick else ""
    return directory / f"{benchmark}{suffix}.json"


def write_result(data: dict[str, Any], directory: Path = RESULTS_DIR) -> Path:
    """Write ``data`` to its result file atomically: to ``<name>.json.tmp`` first, then
    renamed over the file, so an interrupted write never leaves a truncated result."""
    directory.mkdir(parents=True, exist_ok=True)
    path = result_path(str(data["benchmark"]), bool(data["quick"]), directory)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def stop_if_signalled(what: str, interrupted_reason: str | None) -> None:
    """Raise KeyboardInterrupt when a squall engine run ended because of a stop signal.

    The engine routes SIGINT and SIGTERM to itself while it runs and ends only that run
    (``interrupted_reason`` "sigint" / "sigterm"); the benchmark must stop as well rather
    than record the cut-short run as a figure. Other reasons ("deadline") return.
    """
    # Imported here: the benchmark clients import this module and nothing of the engine.
    from squall.interrupt import by_signal

    if by_signal(interrupted_reason):
        raise KeyboardInterrupt(f"{what}: the run was stopped by {interrupted_reason}")


def command_line(benchmark: str, quick: bool) -> str:
    return f"python -m bench --only {benchmark}" + (" --quick" if quick else "")


def log(message: str) -> None:
    """Progress for the person running the benchmarks (stderr, unbuffered)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
