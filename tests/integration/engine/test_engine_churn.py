"""What a worker holds while its users come and go, against real servers on 127.0.0.1: a
stages user that stops closes its session and lets go of it; the open model's idle users
keep theirs to the end of the run, which closes them."""

from __future__ import annotations

import asyncio
import time

import pytest
from engine_behaviours import echo
from engine_echo_server import echo_server

from squall.engine import Scenario, open_rate, stages
from squall.engine.runner import Worker, WorkerPlan
from squall.engine.series import Snapshot
from squall.engine.workload import Workload

pytestmark = pytest.mark.integration

USERS = 3
CYCLES = 4


async def _run(scenario: Scenario) -> tuple[Worker, list[Snapshot], list[int]]:
    """Run ``scenario`` on one worker; its snapshots, and the sessions it held at each."""
    workload = scenario.workload
    plan = WorkerPlan(
        scenario, 0, 1, range(workload.max_users), deadline_s=20.0, snapshot_interval_s=0.1
    )
    snapshots: list[Snapshot] = []
    held: list[int] = []

    def on_snapshot(snapshot: Snapshot) -> None:
        snapshots.append(snapshot)
        held.append(len(worker._live.sessions))

    worker = Worker(plan, echo, on_snapshot)
    async with asyncio.timeout(30.0):
        await worker.run(time.monotonic())
    return worker, snapshots, held


def _scenario(url: str, workload: Workload) -> Scenario:
    return Scenario("churn", echo, workload, params={"url": url}, graceful_stop_s=2.0)


@pytest.mark.timeout(60)
async def test_stages_users_that_stop_close_their_sessions_and_are_let_go() -> None:
    # The target goes up to USERS and back to 0 CYCLES times, and ends up: every rise
    # starts USERS new users (each with a new session and connection).
    cycle = [(USERS, 0.01), (USERS, 0.3), (0, 0.01), (0, 0.3)]
    workload = stages([*cycle * CYCLES, (USERS, 0.01), (USERS, 0.3)])
    with echo_server() as server:
        worker, snapshots, held = await _run(_scenario(server.url, workload))
        made = server.stats.connections
    state = worker.recorder.state()
    assert state.counters.get("errors", 0) == 0
    assert state.counters["iterations"] > 0
    assert made > 2 * USERS, "users stopped and others started"
    # The worker never held more sessions or connections than the target's users.
    assert max(held) <= USERS
    assert max(s.connections for s in snapshots) <= USERS
    # Each snapshot's peak is the most open at once within its interval.
    assert all(s.connections <= s.connections_peak <= USERS for s in snapshots)
    # At the end, only the sessions of the users still running; the run closed them.
    assert len(worker._live.sessions) <= USERS
    assert snapshots[-1].final
    assert snapshots[-1].connections == 0
    # Closed in the last interval: none open at its end, but it had some (the progress
    # line reads "conns 0 (peak 3)", not a bare "conns 0").
    assert snapshots[-1].connections_peak == USERS


@pytest.mark.timeout(60)
async def test_the_open_models_idle_users_keep_their_sessions_until_the_end_closes_them() -> None:
    workload = open_rate(40, 1.0, max_users=4)
    with echo_server() as server:
        worker, snapshots, held = await _run(_scenario(server.url, workload))
        made = server.stats.connections
    assert worker.recorder.state().counters["iterations"] > 0
    # One session (and one connection) per user, reused from iteration to iteration...
    assert 1 <= made <= 4
    assert len(worker._live.sessions) == held[-1] == made
    assert max(s.connections for s in snapshots) == made
    # ...and closed at the end, idle or not.
    assert snapshots[-1].final
    assert snapshots[-1].connections == 0
