"""Which worker the worker parts of platform_races signal (pure)."""

from __future__ import annotations

from squall.scenarios.platform_races import choose_worker

WORKERS = {101, 102}


def test_a_worker_executing_a_run_and_serving_a_socket_comes_first() -> None:
    running = ["host:101:aa", "host:102:bb"]
    assert choose_worker(WORKERS, running, [102, 102]) == (
        102,
        "executing a run and serving sockets",
    )


def test_else_the_worker_of_the_oldest_run() -> None:
    assert choose_worker(WORKERS, ["host:102:bb", "host:101:aa"], [303]) == (
        102,
        "executing a run",
    )


def test_else_the_worker_serving_the_first_socket() -> None:
    assert choose_worker(WORKERS, [], [101, 102]) == (101, "serving a socket")


def test_pids_of_other_processes_are_never_chosen() -> None:
    # A run of a worker that is not the platform's (another host, a recycled pid), a
    # malformed worker column, a socket served elsewhere: nothing to signal.
    running = ["other:999:cc", "garbage", None]
    assert choose_worker(WORKERS, running, [999]) == (None, "serving a socket")
    assert choose_worker(WORKERS, [], []) == (None, "serving a socket")
