"""``run`` (synchronous) versus ``run_scenario`` (awaited)."""

from __future__ import annotations

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
