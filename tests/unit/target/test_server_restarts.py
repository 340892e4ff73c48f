"""How the platform's supervisor counts and describes dead workers (pure)."""

from __future__ import annotations

import signal

from squall.target.server import RestartBudget, exit_description, restart_delay


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
