"""The plugin under the pytest plugins its users run it with: pytest-xdist, pytest-
rerunfailures and pytest-timeout; one report holds every scenario, once, each named by
its test."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from squall.services import Endpoints

pytestmark = pytest.mark.integration

INI = "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
#: One event loop for the whole inner session: a timed-out test's task is cancelled only
#: when it closes, after later tests ran.
SHARED_LOOP_INI = (
    INI.replace("= function", "= session") + "asyncio_default_test_loop_scope = session\n"
)

QUICK = """
import asyncio


async def quick(session):
    await asyncio.sleep(0)
"""


@contextlib.contextmanager
def _echo_target() -> Iterator[str]:
    """squall's echo server, on a free port, for the inner sessions' --squall-target."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = [sys.executable, "-m", "squall.adapters.echo_server", "--port", str(port)]
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        assert "listening" in server.stdout.readline()
        yield f"ws://127.0.0.1:{port}/"
    finally:
        server.terminate()
        server.wait(10)


def _session(
    pytester: pytest.Pytester, source: str, *args: str, ini: str = INI
) -> tuple[Any, dict[str, Any]]:
    """Run ``source`` as an inner pytest session against the echo server: pytest's result
    and the report it wrote."""
    pytester.makeini(ini)
    pytester.makepyfile(QUICK + source)
    results = pytester.path / "results"
    with _echo_target() as url:
        result = pytester.runpytest_subprocess(
            "-p",
            "no:cacheprovider",
            "--real-services",
            f"--squall-target={url}",
            "--squall-adapter=echo",
            "--squall-run-id=inner",
            f"--squall-results-dir={results}",
            *args,
        )
    report = json.loads((results / "inner" / "report.json").read_text())
    return result, report


def test_xdist_workers_scenarios_go_into_the_one_report(
    shared_services: Endpoints, pytester: pytest.Pytester
) -> None:
    # Each worker wrote its own report into the run's folder, and the controller, writing
    # last with none of them, left "scenarios": [] and a PASSED verdict.
    source = """
import pytest


@pytest.mark.parametrize("case", range(4))
async def test_quick(squall, case):
    await squall.run(quick, users=1, iterations=1, name=f"quick{case}")
"""
    result, report = _session(pytester, source, "-n", "2")
    assert result.ret == 0, result.stdout.str()
    names = sorted(s["name"] for s in report["scenarios"])
    assert names == ["quick0", "quick1", "quick2", "quick3"]
    tests = {s["test"] for s in report["scenarios"]}
    module = "test_xdist_workers_scenarios_go_into_the_one_report.py"
    assert tests == {f"{module}::test_quick[{n}]" for n in range(4)}
    assert report["config"]["adapter"] == "echo"  # handed over by the workers too
    result.stdout.fnmatch_lines(["*squall results: *inner/report.json*"])


def test_a_rerun_test_is_judged_by_its_last_attempt(
    shared_services: Endpoints, pytester: pytest.Pytester
) -> None:
    # pytest-rerunfailures: both attempts' scenarios stayed, so pytest passed the test while
    # the report held the failed attempt too.
    source = """
ATTEMPTS = []


async def test_flaky(squall, thresholds):
    outcome = await squall.run(quick, users=1, iterations=1, name="flaky")
    ATTEMPTS.append(outcome)
    thresholds.check(outcome, iterations="count == 2" if len(ATTEMPTS) == 1 else "count == 1")
"""
    result, report = _session(pytester, source, "--reruns", "1")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*1 passed, 1 rerun*"])
    (scenario,) = report["scenarios"]
    assert scenario["verdict"] == "passed"
    assert report["verdict"]["ok"]
    assert report["config"]["adapter"] == "echo"  # squall run records it; pytest did not


def test_a_scenario_the_test_timed_out_in_is_in_the_report(
    shared_services: Endpoints, pytester: pytest.Pytester
) -> None:
    # pytest-timeout's failure, raised inside the load, left no trace of the scenario.
    source = """
import asyncio


async def slow(session):
    await asyncio.sleep(60)


async def test_slow(squall):
    await squall.run(slow, users=1, iterations=1, name="slow")
"""
    result, report = _session(pytester, source, "--timeout", "3")
    result.assert_outcomes(failed=1)
    (scenario,) = report["scenarios"]
    assert scenario["name"] == "slow"
    assert scenario["verdict"] == "failed"
    assert scenario["error"].startswith("the test stopped it: the test ended during the load")
    assert not report["verdict"]["ok"]


def test_a_crashed_xdist_worker_loses_no_scenario_of_a_test_that_ended(
    shared_services: Endpoints, pytester: pytest.Pytester
) -> None:
    # The workers handed their scenarios over at their session's end: one that crashed
    # took those of the tests it had passed with it.
    source = """
import os

import pytest


@pytest.mark.parametrize("case", range(4))
async def test_quick(squall, case):
    await squall.run(quick, users=1, iterations=1, name=f"quick{case}")


async def test_z_crash(squall):
    await squall.run(quick, users=1, iterations=1, name="crashed")
    os._exit(1)
"""
    result, report = _session(pytester, source, "-n", "2")
    assert result.ret == 1
    names = {s["name"] for s in report["scenarios"]}
    assert names >= {"quick0", "quick1", "quick2", "quick3"}, names


def test_a_timed_out_attempt_cancelled_late_stays_out_of_the_report(
    shared_services: Endpoints, pytester: pytest.Pytester
) -> None:
    # With the session's event loop, the timed-out attempt's task is cancelled when that
    # loop closes, after the rerun: its "stopped" record came last and failed the report.
    source = """
import asyncio

ATTEMPTS = []


async def slow(session):
    await asyncio.sleep(60 if len(ATTEMPTS) == 1 else 0)


async def test_slow(squall):
    ATTEMPTS.append(1)
    await squall.run(slow, users=1, iterations=1, name="slow")
"""
    result, report = _session(
        pytester, source, "--reruns", "1", "--timeout", "3", ini=SHARED_LOOP_INI
    )
    assert result.ret == 0, result.stdout.str()
    (scenario,) = report["scenarios"]
    assert scenario["verdict"] == "passed"
    assert report["verdict"]["ok"]


def test_a_scenarios_own_error_is_not_called_the_test_stopping_it(
    shared_services: Endpoints, pytester: pytest.Pytester
) -> None:
    source = """
async def test_bad(squall):
    await squall.run("no_such_module_here:behaviour", users=1, iterations=1, name="bad")
"""
    result, report = _session(pytester, source)
    result.assert_outcomes(failed=1)
    (scenario,) = report["scenarios"]
    assert scenario["error"].startswith("ScenarioError: "), scenario["error"]


def test_every_workers_run_of_one_test_is_in_the_report(
    shared_services: Endpoints, pytester: pytest.Pytester
) -> None:
    # --dist each runs every test on every worker: the last worker's scenarios replaced
    # the others', a failed one among them.
    source = """
async def test_each(squall):
    await squall.run(quick, users=1, iterations=1, name="each")
"""
    result, report = _session(pytester, source, "-n", "2", "--dist", "each")
    assert result.ret == 0, result.stdout.str()
    assert [s["name"] for s in report["scenarios"]] == ["each", "each"]


def test_a_timed_out_scenario_under_xdist_with_a_shared_loop_is_in_the_report(
    shared_services: Endpoints, pytester: pytest.Pytester
) -> None:
    # Cancelled only when the session's loop closed, after its test's report had gone to
    # the controller: the scenario was lost, and the report read PASSED.
    source = """
import asyncio


async def slow(session):
    await asyncio.sleep(60)


async def test_a_slow(squall):
    await squall.run(slow, users=1, iterations=1, name="slow")


async def test_b_after(squall):
    await squall.run(quick, users=1, iterations=1, name="after")
"""
    result, report = _session(pytester, source, "-n", "1", "--timeout", "3", ini=SHARED_LOOP_INI)
    assert result.ret == 1
    verdicts = {s["name"]: s["verdict"] for s in report["scenarios"]}
    assert verdicts == {"slow": "failed", "after": "passed"}
    assert not report["verdict"]["ok"]
