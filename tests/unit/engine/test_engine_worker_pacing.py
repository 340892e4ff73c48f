"""A worker's own periodic work (loop-lag probe, snapshots) follows its plan's intervals,
and its open-model schedule keeps pace with any rate."""

from __future__ import annotations

import asyncio
import time

import pytest

from squall.engine import Scenario, closed, open_rate
from squall.engine.process import run_on_uvloop
from squall.engine.runner import LAG_INTERVAL_S, Worker, WorkerPlan, WorkerReport
from squall.engine.series import Snapshot
from squall.engine.session import Session
from squall.engine.workload import ArrivalRate, Closed, partition
from squall.metrics.histogram import LatencyHistogram


async def _nap(session: Session) -> None:
    await asyncio.sleep(0.005)


async def _worker(
    workload: Closed, snapshot_s: float, lag_s: float
) -> tuple[WorkerReport, list[Snapshot]]:
    scenario = Scenario(name="pacing", behaviour=_nap, workload=workload)
    plan = WorkerPlan(
        scenario,
        worker=0,
        workers=1,
        users=range(workload.users),
        deadline_s=5.0,
        snapshot_interval_s=snapshot_s,
        lag_interval_s=lag_s,
    )
    snapshots: list[Snapshot] = []
    report = await Worker(plan, _nap, snapshots.append).run(time.monotonic())
    return report, snapshots


async def _run(snapshot_s: float, lag_s: float) -> tuple[LatencyHistogram, list[Snapshot], int]:
    report, snapshots = await _worker(closed(2, duration=0.4), snapshot_s, lag_s)
    return report.lag.unpack(), snapshots, report.state.counters["iterations"]


def test_default_plan_probes_loop_lag_every_fifty_milliseconds() -> None:
    assert LAG_INTERVAL_S == 0.05
    plan = WorkerPlan(Scenario("x", _nap, closed(1, iterations=1)), 0, 1, range(1), 1.0)
    assert (plan.snapshot_interval_s, plan.lag_interval_s) == (1.0, LAG_INTERVAL_S)


async def test_lag_probes_and_snapshots_follow_the_plan() -> None:
    lag, snapshots, iterations = await _run(snapshot_s=0.1, lag_s=0.02)
    assert iterations > 0
    # 0.4 s of schedule: about 20 probes at 0.02 s, about 4 snapshots and the final one.
    assert 10 <= lag.count <= 25
    assert 3 <= len(snapshots) <= 6
    assert snapshots[-1].final


async def test_stretched_intervals_leave_no_periodic_work_but_the_final_snapshot() -> None:
    lag, snapshots, iterations = await _run(snapshot_s=3600.0, lag_s=3600.0)
    assert iterations > 0
    assert lag.count == 0
    assert [s.final for s in snapshots] == [True]


async def test_a_snapshot_counts_users_that_came_and_went_since_the_last_one() -> None:
    # Three users start together and finish long before the first snapshot: the snapshot
    # still reports them, as the most users running at once in its interval.
    report, snapshots = await _worker(closed(3, iterations=1), 3600.0, 3600.0)
    assert report.users_peak == 3
    assert [(s.users, s.final) for s in snapshots] == [(3, True)]


async def test_a_report_and_its_snapshots_cross_as_dictionaries() -> None:
    report, snapshots = await _worker(closed(2, duration=0.3), 0.1, 0.02)
    assert report.lag.unpack().count > 0
    assert report.state.trends["iteration_time"].max_us >= 5000  # each iteration naps 5 ms
    assert WorkerReport.from_dict(report.to_dict()) == report
    assert [Snapshot.from_dict(s.to_dict()) for s in snapshots] == snapshots


async def _open_worker(
    workload: ArrivalRate, worker: int, workers: int
) -> tuple[WorkerReport, list[Snapshot]]:
    scenario = Scenario(name="flood", behaviour=_nap, workload=workload)
    users = partition(workload.max_users, workers)[worker]
    plan = WorkerPlan(scenario, worker, workers, users, deadline_s=5.0, snapshot_interval_s=0.1)
    snapshots: list[Snapshot] = []
    async with asyncio.timeout(10.0):
        report = await Worker(plan, _nap, snapshots.append).run(time.monotonic())
    return report, snapshots


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("worker", "workers"), [(0, 1), (1, 3)])
async def test_a_huge_arrival_rate_is_dropped_in_bulk_and_the_run_ends_on_time(
    worker: int, workers: int
) -> None:
    # A trillion arrivals a second for 0.3 s on a few users: all but a few hundred are
    # dropped, and the loop keeps turning for the users and the snapshots meanwhile.
    workload = open_rate(1e12, 0.3, max_users=3)
    report, snapshots = await _open_worker(workload, worker, workers)
    counters = report.state.counters
    mine = len(range(worker, workload.planned_arrivals, workers))
    assert counters["iterations"] + counters["dropped_iterations"] == mine
    assert counters["iterations"] > 0
    assert report.interrupted_reason is None
    assert len(snapshots) >= 2


class _CountedRate(ArrivalRate):
    """An arrival rate that counts how often the runner asked what was due (once per bulk
    drop)."""

    asked: list[float]

    def arrivals_by(self, t: float) -> int:
        self.asked.append(t)
        return super().arrivals_by(t)


@pytest.mark.timeout(30)
async def test_while_no_user_is_free_the_schedule_waits_for_one_instead_of_spinning() -> None:
    plain = open_rate(1e9, 0.3, max_users=2)
    workload = _CountedRate(plain.stages, plain.start_rate, plain.max_users)
    object.__setattr__(workload, "asked", [])
    report, _ = await _open_worker(workload, 0, 1)
    counters = report.state.counters
    assert counters["iterations"] + counters["dropped_iterations"] == workload.planned_arrivals
    # One bulk drop per time a user was freed (each 5 ms nap ends one), not one per turn
    # of the event loop while both users nap.
    assert 0 < len(workload.asked) <= counters["iterations"] + 1


def test_no_open_model_iteration_starts_before_its_intended_start() -> None:
    # uvloop (the workers' loop) runs a timer up to a millisecond early: an iteration begun
    # 0.4 ms before its intended start timed its first response from the later send.
    early: list[float] = []

    async def note(session: Session) -> None:
        lag = session.origin.pending  # began - intended, as the runner measured it
        assert lag is not None
        early.append(-lag)

    scenario = Scenario(name="pacing", behaviour=note, workload=open_rate(400, 0.5, 4))
    plan = WorkerPlan(scenario, worker=0, workers=1, users=range(4), deadline_s=5.0)
    run_on_uvloop(Worker(plan, note, lambda _: None).run(time.monotonic()))
    assert len(early) > 150
    assert max(early) <= 0, f"{sum(e > 0 for e in early)} iterations started early"
