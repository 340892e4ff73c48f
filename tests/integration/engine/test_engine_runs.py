"""The engine against a real echo WebSocket server on 127.0.0.1 (port 0, own thread)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from engine_echo_server import close_ignoring_server, echo_server

from squall.engine import (
    ProgressView,
    Scenario,
    Session,
    batches,
    closed,
    jwt_identities,
    open_rate,
    run_scenario,
    stages,
)
from squall.engine.client import CLOSE_TIMEOUT_S
from squall.metrics.result import RunResult
from squall.metrics.thresholds import OutcomeStatus, evaluate, parse_thresholds

pytestmark = pytest.mark.integration

SECRET = "integration-secret-of-at-least-32-bytes"


def assert_every_message_accounted(result: RunResult) -> None:
    sent = result.count("messages_sent")
    assert result.count("errors.connect") == 0
    assert sent == (
        result.count("messages_received") + result.count("timeouts") + result.count("errors")
    )


async def test_closed_workload_across_two_processes_adds_up_exactly() -> None:
    with echo_server() as server:
        scenario = Scenario(
            "echo-closed",
            "engine_behaviours:echo",
            closed(6, batches(3, 0.1), iterations=20),
            params={"url": server.url},
        )
        result = await run_scenario(scenario, processes=2, progress=False)
    assert result.processes == 2
    assert not result.interrupted
    assert result.count("messages_sent") == 6 * 20
    assert result.count("iterations") == 6 * 20
    assert_every_message_accounted(result)
    assert result.count("errors") == 0
    assert server.stats.received == 6 * 20
    assert result.trend("ws_connect").count == 6 == server.stats.connections
    assert result.trend("response_time").count == 120
    assert result.rate("success").rate == 1.0
    assert result.series, "workers sent per-second snapshots"
    assert sum(p.sent_per_s for p in result.series) > 0
    # Connections per second, as the progress line shows them: each process's 3 users
    # kept one open from their first iteration on (a sum of both at most).
    peaks = [p.connections_peak for p in result.series]
    assert all(peak is not None for peak in peaks)
    assert 3 <= max(peak or 0 for peak in peaks) <= 6
    assert result.gauge("users").value >= 3
    assert RunResult.from_dict(result.to_dict()) == result


async def test_open_workload_runs_on_schedule_and_counts_drops() -> None:
    views: list[ProgressView] = []
    with echo_server() as server:
        scenario = Scenario(
            "echo-open",
            "engine_behaviours:echo",
            open_rate(40, 1.5, max_users=8),
            params={"url": server.url},
        )
        result = await run_scenario(scenario, processes=1, progress=views.append)
    planned = result.workload["planned_iterations"]
    assert planned == 60
    assert result.count("iterations") + result.count("dropped_iterations") == planned
    assert result.count("messages_sent") == result.count("iterations")
    assert_every_message_accounted(result)
    assert result.trend("schedule_lag").count == result.count("iterations")
    assert views, "progress callback got per-second views"
    assert views[-1].elapsed_s >= 1.0


async def test_stalling_target_shows_up_in_open_model_p99() -> None:
    with echo_server() as server:
        scenario = Scenario(
            "echo-stall",
            "engine_behaviours:echo",
            open_rate(40, 2.0, max_users=40),
            params={"url": server.url, "stall_every": 10, "stall_s": 1.0},
        )
        result = await run_scenario(scenario, processes=1, progress=False)
    trend = result.trend("response_time")
    assert trend.count == result.count("iterations") > 0
    assert trend.p99 >= 0.9
    assert trend.p50 < 0.5
    assert_every_message_accounted(result)


async def test_think_time_before_an_open_model_request_is_not_its_latency() -> None:
    # Each iteration thinks 0.4 s (and its first connects) before its request: measured
    # from the intended start, every response_time read 0.4 s against a loopback echo.
    with echo_server() as server:
        scenario = Scenario(
            "echo-think",
            "engine_behaviours:echo",
            open_rate(20, 1.0, max_users=20),
            params={"url": server.url, "think_s": 0.4},
        )
        result = await run_scenario(scenario, processes=1, progress=False)
    trend = result.trend("response_time")
    assert trend.count == result.count("iterations") > 0
    assert trend.p50 < 0.2
    assert result.trend("iteration_time").p50 >= 0.4  # the iteration's own time keeps it
    assert_every_message_accounted(result)


async def test_a_clean_run_judges_thresholds_on_counters_that_never_counted() -> None:
    # errors, timeouts and dropped_iterations are counted only when they happen: a clean
    # run had none of them, and "errors: count == 0" read "not recorded" (in pytest, a
    # failure of a run that had no error).
    with echo_server() as server:
        scenario = Scenario(
            "echo-clean",
            "engine_behaviours:echo",
            open_rate(20, 0.5, max_users=20),
            params={"url": server.url},
        )
        result = await run_scenario(scenario, processes=1, progress=False)
    assert result.count("iterations") > 0
    for name in ("errors", "timeouts", "dropped_iterations", "interrupted_iterations"):
        assert result.count(name) == 0, name
        assert name in result.metrics
    outcomes = evaluate(
        parse_thresholds({"errors": ["count == 0"], "timeouts": ["count == 0"]}),
        result.metrics,
        "echo-clean",
    )
    assert [o.status for o in outcomes] == [OutcomeStatus.PASSED, OutcomeStatus.PASSED]


async def test_a_client_timeout_counts_in_timeouts_and_a_behaviours_own_in_errors() -> None:
    """A request that times out is counted once, in ``timeouts``, even when the behaviour
    lets the MessageTimeout escape; one the behaviour raises itself is ``errors.timeout``."""
    with echo_server() as server:
        escaping = Scenario(
            "echo-timeout",
            "engine_behaviours:echo",
            closed(2, batches(2, 0.0), iterations=2),
            params={"url": server.url, "stall_every": 1, "stall_s": 0.5, "timeout_s": 0.05},
        )
        result = await run_scenario(escaping, processes=1, progress=False)
    assert result.count("iterations") == 4
    assert result.count("timeouts") == 4
    assert result.count("errors") == 0
    assert result.count("errors.timeout") == 0
    assert_every_message_accounted(result)

    own = Scenario("own-timeout", "engine_behaviours:gives_up", closed(1, iterations=3))
    result = await run_scenario(own, processes=1, progress=False)
    assert result.count("timeouts") == 0
    assert result.count("errors.timeout") == 3 == result.count("errors")


async def test_jwt_identity_and_subprotocol_reach_the_server() -> None:
    identities = jwt_identities(SECRET)
    token = identities(0).token
    assert token is not None
    with echo_server(required_token=token) as server:
        scenario = Scenario(
            "auth",
            "engine_behaviours:connect_once",
            closed(1, iterations=2),
            identities=identities,
            params={"url": server.url},
        )
        result = await run_scenario(scenario, processes=1, progress=False)
    assert result.count("errors") == 0
    assert result.trend("round_trip").count == 2
    assert server.stats.authorizations == [f"Bearer {token}"] * 2
    assert server.stats.subprotocols == ["squall.v1"] * 2


async def test_rejected_upgrade_is_an_error_with_its_status() -> None:
    with echo_server(required_token="only-this-one") as server:
        scenario = Scenario(
            "auth-wrong",
            "engine_behaviours:connect_once",
            closed(2, iterations=1),
            identities=jwt_identities(SECRET),
            params={"url": server.url},
        )
        result = await run_scenario(scenario, processes=1, progress=False)
    assert result.count("errors.connect") == 2
    assert result.count("messages_sent") == 0
    (summary,) = result.errors
    assert summary.kind == "connect"
    assert "HTTP 401" in summary.samples[0]


async def test_stages_follow_the_target_and_end_by_themselves() -> None:
    with echo_server() as server:
        scenario = Scenario(
            "echo-stages",
            "engine_behaviours:echo",
            stages([(4, 1.0), (0, 0.5)]),
            params={"url": server.url},
        )
        result = await run_scenario(scenario, processes=1, progress=False)
    assert not result.interrupted
    assert 1 <= result.gauge("users").value <= 4
    assert result.count("iterations") > 0
    assert_every_message_accounted(result)


async def keeps_a_connection(session: Session) -> None:
    await session.connection(session.params["url"])


async def test_sockets_left_open_close_together_when_the_target_never_answers_close() -> None:
    """Each user leaves a socket open for the end of the run to close. The target never
    answers the close frame, so each close waits its whole timeout: one after the other,
    50 sockets would hold the run for 50 close timeouts; together they take one."""
    users = 50
    async with close_ignoring_server() as server:
        scenario = Scenario(
            "close-ignored",
            keeps_a_connection,
            closed(users, iterations=1),
            params={"url": server.url},
        )
        started = time.monotonic()
        # Well under 50 close timeouts; the rest is for a worker to start on a busy host.
        async with asyncio.timeout(15 * CLOSE_TIMEOUT_S):
            result = await run_scenario(scenario, processes=1, progress=False)
        took = time.monotonic() - started
    assert server.stats.connections == users
    assert result.trend("ws_connect").count == users
    assert result.count("iterations") == users
    assert result.count("errors") == 0
    assert not result.interrupted
    # Every socket sent its close frame and waited for the answer that never came.
    assert server.stats.close_frames == users
    assert took >= CLOSE_TIMEOUT_S


async def sleepy(session: Session) -> None:
    await asyncio.sleep(60)


async def test_deadline_cancels_remaining_users_as_interrupted() -> None:
    scenario = Scenario("sleepy", sleepy, closed(3, iterations=1))
    result = await run_scenario(scenario, processes=1, progress=False, deadline_s=0.3)
    assert result.interrupted
    assert result.interrupted_reason == "deadline"
    assert result.count("interrupted_iterations") == 3
    assert result.count("iterations") == 0


@pytest.mark.parametrize(
    ("sig", "reason"), [(signal.SIGINT, "sigint"), (signal.SIGTERM, "sigterm")], ids=str
)
async def test_a_stop_signal_stops_cleanly_and_keeps_partial_results(
    sig: signal.Signals, reason: str
) -> None:
    def interrupt_on_first_second(view: ProgressView) -> None:
        os.kill(os.getpid(), sig)

    before = signal.getsignal(sig)
    with echo_server() as server:
        scenario = Scenario(
            f"echo-{reason}",
            "engine_behaviours:echo",
            closed(2, duration=30),
            params={"url": server.url},
            graceful_stop_s=2.0,
        )
        result = await run_scenario(scenario, processes=1, progress=interrupt_on_first_second)
    assert result.interrupted
    assert result.interrupted_reason == reason
    assert result.duration_s < 10
    assert result.count("iterations") > 0
    assert_every_message_accounted(result)
    assert signal.getsignal(sig) == before  # the caller's handler is back


async def test_a_worker_killed_mid_run_is_named_and_the_others_are_kept() -> None:
    # The run raised WorkerFailed: the surviving worker's measurements were lost too.
    scenario = Scenario("killed", "engine_behaviours:kills_its_worker", closed(4, iterations=5))
    result = await run_scenario(scenario, processes=2, progress=False)
    # Worker 1 (users 2 and 3) reported; worker 0 died in user 0's second iteration.
    assert result.count("iterations") == 2 * 5
    assert result.count("errors.worker") == 1
    (summary,) = result.errors
    assert summary.samples[0].startswith("worker 0 was killed by SIGKILL during the run")
    assert summary.samples[0].endswith("the measurements of its users 0..1 are missing")


async def test_a_worker_whose_loop_is_blocked_is_named_and_the_others_are_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Shorter waits for a worker that does not answer: the blocked one sleeps longer.
    engine_run = importlib.import_module("squall.engine.run")  # the module, not the function
    monkeypatch.setattr(engine_run, "REPORT_SLACK_S", 1.0)
    monkeypatch.setattr(engine_run, "STOP_WAIT_S", 1.0)
    scenario = Scenario(
        "blocked",
        "engine_behaviours:blocks_first_user",
        closed(4, iterations=5),
        params={"block_s": 30.0},
        graceful_stop_s=0.0,
    )
    result = await run_scenario(scenario, processes=2, progress=False, deadline_s=1.0)
    assert result.interrupted_reason == "deadline"
    # Worker 1 (users 2 and 3) reported; worker 0's loop never came back.
    assert result.count("iterations") == 2 * 5
    assert result.count("errors.worker") == 1
    (summary,) = result.errors
    assert summary.samples[0] == (
        "worker 0 sent no report 2 s past the run's deadline and was stopped: its event loop "
        "was blocked, most likely by a behaviour calling a blocking function (time.sleep, a "
        "synchronous client) instead of awaiting one; the measurements of its users 0..1 are "
        "missing"
    )
    # Stopped: it ignored the SIGTERM it was sent, and the caller's process hung at exit
    # until its behaviour returned.
    assert not [p for p in multiprocessing.active_children() if p.name.startswith("squall-")]


def test_workers_of_a_killed_parent_stop_quietly(tmp_path: Path) -> None:
    # The parent is killed mid-run (SIGKILL, the OOM killer): its workers stop by themselves,
    # without a BrokenPipeError traceback per worker on the terminal it left.
    folder = tmp_path / "running"
    folder.mkdir()
    script = tmp_path / "parent.py"
    script.write_text(
        "from squall.engine import Scenario, closed, run\n"
        'if __name__ == "__main__":\n'
        f"    scenario = Scenario('orphaned', 'engine_behaviours:idles', closed(4, iterations="
        f"100_000), params={{'folder': {str(folder)!r}}})\n"
        "    run(scenario, processes=2, progress=False, deadline_s=120)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    parent = subprocess.Popen(
        [sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        end = time.monotonic() + 60
        while len(list(folder.iterdir())) < 2 and parent.poll() is None:
            assert time.monotonic() < end, "the two workers never ran"
            time.sleep(0.05)
        workers = [psutil.Process(int(p.name)) for p in folder.iterdir()]
        time.sleep(1.5)  # a snapshot or two on the way
        parent.kill()
        parent.wait()
        _, alive = psutil.wait_procs(workers, timeout=30)
        assert not alive, "the workers of a killed parent kept running"
        _, stderr = parent.communicate(timeout=10)
    finally:
        parent.kill()
        for p in folder.iterdir():
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(int(p.name)).kill()
    assert b"Traceback" not in stderr, stderr.decode()
