"""How ``serve`` stops its workers: a SIGTERM and their graceful shutdown while the process
that started it lives; at once (SIGKILL) once that process is gone, even mid-wait."""

from __future__ import annotations

import multiprocessing
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from squall.parent_death import parent_death_signal
from squall.target.server import ParentWatch, stop_workers

_fork = multiprocessing.get_context("fork")


def _graceful(seconds: float, ready: Any) -> None:
    """A worker whose shutdown on SIGTERM takes ``seconds``, then exits 0."""

    def stop(signum: int, frame: object) -> None:
        time.sleep(seconds)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    ready.release()
    time.sleep(60)


def _started(seconds: float) -> list[multiprocessing.process.BaseProcess]:
    """Two workers whose shutdown takes ``seconds``, their SIGTERM handlers in place."""
    ready = _fork.Semaphore(0)
    started = [_fork.Process(target=_graceful, args=(seconds, ready)) for _ in range(2)]
    for process in started:
        process.start()
    for _ in started:
        assert ready.acquire(timeout=30)
    return started


def _running(seconds: float) -> Iterator[list[multiprocessing.process.BaseProcess]]:
    started = _started(seconds)
    yield started
    for process in started:
        if process.is_alive():
            process.kill()
        process.join(5)


@pytest.fixture
def workers() -> Iterator[list[multiprocessing.process.BaseProcess]]:
    """Workers whose graceful shutdown takes 1 s."""
    yield from _running(1.0)


@pytest.fixture
def slow_workers() -> Iterator[list[multiprocessing.process.BaseProcess]]:
    """Workers whose graceful shutdown would take 20 s."""
    yield from _running(20.0)


def test_a_live_starter_lets_the_workers_shut_down_gracefully(
    workers: list[multiprocessing.process.BaseProcess],
) -> None:
    began = time.monotonic()
    stop_workers(workers, 30, lambda: False)
    assert time.monotonic() - began >= 0.9
    assert [p.exitcode for p in workers] == [0, 0]


def test_a_gone_starter_has_the_workers_killed_at_once(
    slow_workers: list[multiprocessing.process.BaseProcess], capsys: pytest.CaptureFixture[str]
) -> None:
    began = time.monotonic()
    stop_workers(slow_workers, 30, lambda: True)
    assert time.monotonic() - began < 10
    assert [p.exitcode for p in slow_workers] == [-signal.SIGKILL] * 2
    assert "the process that started it is gone; stopping the workers at once" in (
        capsys.readouterr().err
    )


def test_a_starter_gone_during_the_graceful_wait_cuts_it_short(
    slow_workers: list[multiprocessing.process.BaseProcess],
) -> None:
    began = time.monotonic()
    stop_workers(slow_workers, 30, lambda: time.monotonic() - began > 0.5)
    assert time.monotonic() - began < 10
    assert [p.exitcode for p in slow_workers] == [-signal.SIGKILL] * 2


def test_a_process_without_a_parent_death_signal_is_never_orphaned() -> None:
    """``squall target serve`` run from a shell (its parent may exit, under nohup) stops
    gracefully whatever its parent: only a death signal makes a gone parent count."""
    if parent_death_signal() != 0:
        pytest.skip("this pytest itself runs with a parent-death signal")
    watch = ParentWatch(parent=-1)  # a parent it no longer has
    assert watch.watched is False
    assert watch.gone() is False
