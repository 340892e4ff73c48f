"""How the platform's supervisor counts, describes and replaces dead workers (fake workers
announcing on a real readiness pipe)."""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from squall.target.server import (
    Readiness,
    RestartBudget,
    _Slots,
    announce,
    exit_description,
    restart_delay,
)


def test_the_budget_allows_limit_restarts_within_the_window() -> None:
    budget = RestartBudget(limit=2, window_s=60.0)
    assert budget.take(0.0)
    assert budget.take(10.0)
    assert not budget.take(59.9)  # a third within 60 s of the first


def test_restarts_older_than_the_window_no_longer_count() -> None:
    budget = RestartBudget(limit=2, window_s=60.0)
    assert budget.take(0.0)
    assert budget.take(10.0)
    assert budget.take(60.0)  # the first has left the window
    assert not budget.take(65.0)  # 10 and 60 are still in it
    assert budget.take(70.0)


def test_a_refused_restart_is_not_counted() -> None:
    budget = RestartBudget(limit=1, window_s=10.0)
    assert budget.take(0.0)
    assert not budget.take(5.0)
    assert budget.take(10.0)


def test_a_zero_budget_refuses_every_restart() -> None:
    assert not RestartBudget(limit=0).take(0.0)


def test_exits_are_described_by_code_or_signal() -> None:
    assert exit_description(-signal.SIGKILL) == "was killed by SIGKILL"
    assert exit_description(-signal.SIGSEGV) == "was killed by SIGSEGV"
    assert exit_description(-signal.SIGTERM) == "stopped on SIGTERM"
    assert exit_description(3) == "exited with code 3"
    assert exit_description(-200) == "was killed by signal 200"


def test_replacements_that_die_before_serving_back_off() -> None:
    assert [restart_delay(n) for n in range(7)] == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0]


class FakeWorker:
    """What the supervisor reads of a worker process: its pid, whether it lives, its exit."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.exitcode: int | None = None

    def is_alive(self) -> bool:
        return self.exitcode is None


@pytest.fixture
def ready() -> Iterator[Readiness]:
    readiness = Readiness(multiprocessing.get_context("spawn"))
    yield readiness
    readiness.close()


def test_readiness_counts_each_worker_that_announced(ready: Readiness) -> None:
    assert ready.count() == 0
    assert not ready.serves(100)
    for pid in (100, 101, 100):
        announce(ready.writer, pid)
    assert ready.serves(100)
    assert ready.serves(101)
    assert not ready.serves(102)
    assert not ready.serves(None)
    assert ready.count() == 2


def test_a_worker_announcing_to_a_parent_that_is_gone_says_nothing() -> None:
    readiness = Readiness(multiprocessing.get_context("spawn"))
    readiness._reader.close()  # what a parent killed outright leaves: nobody reads
    announce(readiness.writer, 100)  # no BrokenPipeError
    readiness.writer.close()


class Slots:
    """A supervisor's slots over fake workers; a worker serves once it announced so."""

    def __init__(
        self, ready: Readiness, count: int = 2, budget: RestartBudget | None = None
    ) -> None:
        self.ready = ready
        self.started: list[FakeWorker] = []
        self.slots = _Slots(self._start, count, ready, budget or RestartBudget())
        self.slots.start()

    def _start(self, slot: int) -> Any:
        worker = FakeWorker(100 + len(self.started))
        self.started.append(worker)
        return worker

    def serve(self, worker: FakeWorker) -> None:
        announce(self.ready.writer, worker.pid)

    def tick(self, now: float) -> str | None:
        return self.slots.tick(now, announced=True)


def test_a_dead_worker_that_served_is_replaced_at_once(
    ready: Readiness, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = Slots(ready)
    first, _ = fake.started
    fake.serve(first)
    first.exitcode = -signal.SIGKILL
    assert fake.tick(0.0) is None  # the death is seen, its replacement is due now
    assert fake.tick(0.0) is None  # and started
    assert len(fake.started) == 3
    fake.serve(fake.started[2])
    assert fake.tick(0.1) is None
    err = capsys.readouterr().err
    assert "worker pid 100 was killed by SIGKILL; starting a new one\n" in err
    assert "new worker pid 102 serves" in err


def test_replacements_dying_before_serving_wait_longer_each_time(
    ready: Readiness, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = Slots(ready, count=1)
    (first,) = fake.started
    fake.serve(first)
    first.exitcode = 1
    fake.tick(0.0)
    fake.tick(0.0)  # replacement 101 starts
    fake.started[-1].exitcode = 3  # and dies before serving
    fake.tick(1.0)
    fake.tick(1.4)
    assert len(fake.started) == 2  # not yet: 0.5 s after its death
    fake.tick(1.5)
    assert len(fake.started) == 3
    err = capsys.readouterr().err
    assert "worker pid 101 exited with code 3; starting a new one in 0.5 s" in err


def test_deaths_past_the_budget_or_before_every_worker_served_stop(ready: Readiness) -> None:
    fake = Slots(ready, budget=RestartBudget(limit=0))
    fake.started[0].exitcode = 1
    assert fake.slots.tick(0.0, announced=False) == (
        "squall target: worker pid 100 exited with code 1 before every worker served; stopping"
    )
    stopping = fake.tick(0.0)
    assert stopping is not None
    assert stopping.endswith(
        "stopping: more than 0 workers died within 60 s (SQUALL_WORKER_RESTARTS, "
        "SQUALL_WORKER_RESTART_WINDOW_S), see the workers' errors above"
    )
