"""The reference adapter against the session's reference platform: its errors without ids."""

from __future__ import annotations

import dataclasses
import time

import pytest

from squall.adapters.tracker import RunStatus
from squall.engine.errors import ConnectionClosed
from squall.pytest_plugin import TestUser, UserContext
from squall.target.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.real_services]


async def test_a_message_the_platform_cannot_read_fails_at_once_with_its_code(
    user_context: UserContext,
) -> None:
    # Above SQUALL_MAX_FRAME_BYTES the platform rejects the frame before reading it, so
    # its error cannot echo the message's id: the message fails with that error anyway.
    alice = user_context()
    oversized = "x" * (Settings.max_frame_bytes + 1)
    async with user_context.chat(alice) as chat:
        started = time.monotonic()
        rejected = await chat.chat(alice.thread(), oversized, timeout=20)
        waited = time.monotonic() - started
        # The socket stays open, and its next message is answered as usual.
        answered = await chat.chat(alice.thread(), "hello", timeout=20)
    assert (rejected.status, rejected.error_code) == (RunStatus.REJECTED, "frame_too_large")
    assert waited < 10  # not at the timeout
    assert answered.status is RunStatus.COMPLETED
    recorder = chat.session.recorder
    assert recorder.counter("timeouts") == 0
    assert recorder.counter("errors.server.frame_too_large") == 1
    assert recorder.counter("errors") == 1
    assert recorder.state().rates["success"] == (1, 2)


async def test_a_refused_token_is_counted_as_the_platforms_refusal_with_the_fix(
    user_context: UserContext,
) -> None:
    # The platform closes a socket whose token it refuses with 4401: counted as a plain
    # errors.closed ("code 4401, reason 'token rejected: …'"), naming nothing to check.
    alice = user_context()
    forged = TestUser(dataclasses.replace(alice.identity, token=f"{alice.token}x"))
    with pytest.raises(ConnectionClosed):
        async with user_context.chat(forged) as chat:
            await chat.chat(forged.thread(), "hello", timeout=20)
    recorder = chat.session.recorder
    assert recorder.counter("errors.server.unauthorized") == 1
    assert recorder.counter("errors") == 1
    (sample,) = recorder.state().error_samples["server.unauthorized"]
    assert "code 4401" in sample
    assert "check the secret or key it verifies tokens with (--jwt-secret" in sample
    # Nothing was answered: the latency trends are there without a sample, so their
    # thresholds read "no samples", not "not recorded by that scenario".
    trends = recorder.state().trends
    for name in ("ack_time", "first_event_time", "response_time"):
        assert trends[name].unpack().count == 0, name
