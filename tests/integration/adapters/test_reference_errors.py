"""The reference adapter against the session's reference platform: its errors without ids."""

from __future__ import annotations

import time

import pytest

from squall.adapters.tracker import RunStatus
from squall.pytest_plugin import UserContext
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
