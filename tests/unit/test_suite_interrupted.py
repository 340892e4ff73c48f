"""A Ctrl-C as the suite ends keeps what it measured (the suite's loop, no services)."""

from __future__ import annotations

import asyncio
import signal

import pytest

from squall import suite
from squall.config import Config, RunConfig
from squall.suite import ScenarioOutcome, SuiteContext, SuiteEntry, SuiteReport, run_suite


async def quick(config: Config, ctx: SuiteContext) -> ScenarioOutcome:
    return ScenarioOutcome(name="quick", metrics={}, outcomes=[], duration_s=0.1)


def test_a_ctrl_c_as_the_last_scenario_is_printed_keeps_its_outcome(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # asyncio's runner cancelled the suite's task in its last synchronous step (printing
    # the outcome) and dropped its result: the whole run was lost, files and all.
    entry = SuiteEntry("quick", quick, "a scenario that measures nothing", uses_target=False)
    monkeypatch.setitem(suite.SCENARIOS, "quick", entry)
    config = Config(run=RunConfig(scenarios=("quick",)))
    ctx = SuiteContext(target=None, database_url="postgresql://x", redis_url="redis://x")
    report = SuiteReport("20260101-000000-aaaa", 0.0)
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(
            run_suite(
                config,
                ctx,
                run_id=report.run_id,
                on_scenario=lambda _: signal.raise_signal(signal.SIGINT),
                report=report,
            )
        )
    assert [s.name for s in report.scenarios] == ["quick"]
