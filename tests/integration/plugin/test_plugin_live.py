"""The plugin's fixtures against the session's real services and reference platform."""

from __future__ import annotations

import pytest

from squall.adapters.tracker import RunStatus
from squall.pytest_plugin import SquallRunner, ThresholdAsserts, UserContext

pytestmark = [pytest.mark.integration, pytest.mark.real_services]


async def test_users_are_isolated_from_each_other(user_context: UserContext) -> None:
    alice, bob = user_context.many(2)
    assert alice.user_id != bob.user_id
    assert alice.token is not None
    assert alice.headers() == {"Authorization": f"Bearer {alice.token}"}
    async with user_context.chat(alice) as alice_chat, user_context.chat(bob) as bob_chat:
        mine = await alice_chat.chat(alice.thread(), "hello from alice", timeout=20)
        assert mine.status is RunStatus.COMPLETED
        stolen = await bob_chat.chat(alice.thread(), "bob writes to alice's thread", timeout=20)
        assert (stolen.status, stolen.error_code) == (RunStatus.REJECTED, "not_found")
        # Alice's socket saw nothing of Bob's attempt, Bob's nothing of Alice's run.
        assert alice_chat.session.recorder.counter("isolation_leaks") == 0
        assert bob_chat.session.recorder.counter("isolation_leaks") == 0
        assert bob_chat.tracker.foreign_events == []


async def test_suite_scenario_runs_as_squall_run_does(
    squall: SquallRunner, thresholds: ThresholdAsserts
) -> None:
    outcome = await squall.scenario("websocket_concurrency", scale=0.04)
    assert outcome.name == "websocket_concurrency"
    assert outcome.metrics["iterations"].count == 3  # type: ignore[union-attr]
    assert outcome.outcomes, "the configured thresholds were judged"
    thresholds.check(outcome)
    thresholds.check(outcome, violations="value == 0", delivery="rate >= 0.8")
