"""``run`` (synchronous) versus ``run_scenario`` (awaited)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from squall.engine import Scenario, Session, closed, run


async def _idle(session: Session) -> None:
    return None


def test_run_is_synchronous() -> None:
    result = run(Scenario("sync", _idle, closed(2, iterations=3)), processes=1, progress=False)
    assert result.count("iterations") == 6


async def test_run_inside_a_running_loop_names_the_fix() -> None:
    with pytest.raises(RuntimeError, match=r"use 'await run_scenario\(scenario, \.\.\.\)'"):
        run(Scenario("nested", _idle, closed(1, iterations=1)), processes=1, progress=False)


def test_a_script_without_a_main_guard_is_told_to_add_one(tmp_path: Path) -> None:
    # Spawned workers re-import the main module: a script calling run() at its top level
    # would run it again in each worker.
    (tmp_path / "behaviours.py").write_text("async def idle(session):\n    return None\n")
    (tmp_path / "script.py").write_text(
        "from squall.engine import Scenario, closed, run\n"
        "run(Scenario('unguarded', 'behaviours:idle', closed(2, iterations=1)), processes=2,"
        " progress=False)\n"
    )
    done = subprocess.run(
        [sys.executable, "script.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    told = "squall: run('unguarded') was called while a worker process imported the main module"
    # Each worker says why in one line, without a traceback through multiprocessing; the one
    # traceback is the script's own, of the WorkerFailed naming both workers.
    assert done.stderr.count(told) == 2
    assert done.stderr.count("Traceback") == 1
    assert "multiprocessing" not in done.stderr
    assert "worker 0: exited" in done.stderr
    assert "worker 1: exited" in done.stderr
    assert "a script that calls run() must guard its entry point" in done.stderr


INTERACTIVE = """
import asyncio, sys
from squall.engine import Scenario, ScenarioError, closed, run_scenario

async def chat(session):
    await asyncio.sleep(0)

async def main():
    scenario = Scenario("c", chat, closed(4, iterations=3))
    result = await run_scenario(scenario, progress=False)
    print("ran in", result.processes, "process(es):", result.count("iterations"))
    try:
        await run_scenario(scenario, processes=2, progress=False)
    except ScenarioError as exc:
        print("refused:", exc)

asyncio.run(main())
"""


def test_a_behaviour_defined_in_an_interactive_main_runs_in_one_process() -> None:
    # As in a notebook: pickle sent chat by name, and every spawned worker failed to find
    # it, with a hint about a main guard that does not apply.
    done = subprocess.run(
        [sys.executable, "-c", INTERACTIVE], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "ran in 1 process(es): 12" in done.stdout
    assert "refused: scenario 'c' cannot be sent to 2 worker processes: its behaviour" in (
        done.stdout
    )
    assert "Traceback" not in done.stderr
