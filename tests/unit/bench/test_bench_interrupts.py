"""Stopping a benchmark: a signal that ended a squall engine run stops the benchmark too,
and the engine benchmark's clients die with ``python -m bench`` even when held stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import bench.cost_growth as cost_growth
import bench.platform_throughput as platform_throughput
import pytest
from bench.cost_growth import run_status
from bench.record import stop_if_signalled

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("reason", ["sigint", "sigterm"])
def test_a_run_stopped_by_a_signal_stops_the_benchmark(reason: str) -> None:
    with pytest.raises(KeyboardInterrupt, match=f"growth: 4×: the run was stopped by {reason}"):
        stop_if_signalled("growth: 4×", reason)


@pytest.mark.parametrize("reason", [None, "deadline"])
def test_a_run_that_completed_or_hit_its_deadline_is_kept(reason: str | None) -> None:
    stop_if_signalled("growth: 4×", reason)


def test_growth_says_capped_only_for_the_deadline() -> None:
    assert run_status(None) == "completed"
    assert run_status("deadline") == "capped"
    assert run_status("parent-gone") == "interrupted (parent-gone)"


def test_platform_measurement_cut_short_by_ctrl_c_is_not_recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        platform_throughput,
        "run_engine",
        lambda *a, **k: SimpleNamespace(interrupted_reason="sigint"),
    )
    scenario: Any = SimpleNamespace(workload=SimpleNamespace(max_users=10))
    with pytest.raises(KeyboardInterrupt, match="sigint"):
        platform_throughput._measure("ping, round 1", scenario, 1.0, 0.5, "round_trip")


def test_growth_cut_short_by_sigterm_stops_without_a_row(monkeypatch: pytest.MonkeyPatch) -> None:
    @contextlib.contextmanager
    def stack(**kwargs: Any) -> Iterator[Any]:
        yield SimpleNamespace(target=None)

    async def one(target: Any, scale: float, cap_s: float) -> tuple[Any, Any]:
        return SimpleNamespace(interrupted_reason="sigterm"), SimpleNamespace(peak_mb=1.0)

    monkeypatch.setattr(cost_growth, "platform_stack", stack)
    monkeypatch.setattr(cost_growth, "_one", one)
    with pytest.raises(KeyboardInterrupt, match="growth: 1×: the run was stopped by sigterm"):
        cost_growth.run(quick=True)


#: A stand-in for ``python -m bench``: launches one engine-benchmark client (a sleeper in
#: place of the real one), stops it as take_turns does between turns, and dies at once.
PARENT = """
import os, signal, sys
from pathlib import Path
import bench.engine_efficiency as engine
engine.command = lambda *args: [sys.executable, "-c", "import time; time.sleep(60)"]
client = engine._launch("bare", "ws://127.0.0.1:23517/", 1, 60.0, None, Path(sys.argv[1]))
os.kill(client.pid, signal.SIGSTOP)
print(client.pid, flush=True)
os._exit(0)
"""


def _state(pid: int) -> str | None:
    """The process state letter of ``pid`` (``T`` stopped, ``Z`` dead, unreaped), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_stopped_client_dies_with_the_process_that_launched_it(tmp_path: Path) -> None:
    parent = subprocess.run(
        [sys.executable, "-c", PARENT, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    pid = int(parent.stdout.split()[0])
    try:
        deadline = time.monotonic() + 5.0
        while _state(pid) not in (None, "Z") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _state(pid) in (None, "Z"), f"client {pid} outlived its parent ({_state(pid)})"
    finally:
        if _state(pid) not in (None, "Z"):
            os.kill(pid, signal.SIGKILL)
