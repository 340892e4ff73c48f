"""A lock refresh that drops the cancellation meant to stop it does not hold the thread.

On Python 3.11 a redis-py command can return its result instead of raising the
cancellation that arrived while it completed (its ``asyncio.wait_for``, CPython gh-86296).
A run that stopped its lock refresher by cancelling it then waited for the refresher for
good, and the refresher refreshed the lock for good: the run never ended in its worker and
every later run of the thread found the lock held and went back to the queue. Here the
refreshes of a real Redis lock stay in flight for a long time and drop a cancellation
that arrives meanwhile, as such a command does, and the run ends while one is in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest
import redis.asyncio as aioredis
from runtime_support import WAIT_S, Recorder, StartRuntime

from squall.target.ids import ThreadID, UserID
from squall.target.locks import RunLock
from squall.target.settings import Settings

pytestmark = pytest.mark.integration

USER = UserID("dropping")
THREAD = ThreadID("dropped-cancel")
#: A refresh every second; a run of about 2 s (8 tokens at 4 a second) ends while the
#: first refresh, begun at 1 s, is still in flight (for IN_FLIGHT_S).
LOCK_TTL_MS = 3_000
PACING = {"model_tokens_per_second": 4.0, "model_answer_tokens": 8, "stream_chunk_tokens": 1}
IN_FLIGHT_S = 15.0
POLL_S = 0.1


class DroppingLock(RunLock):
    """The run lock on the test's Redis, refreshed as a redis-py command on Python 3.11
    can be: the refresh is done, then stays in flight for ``IN_FLIGHT_S``, and a
    cancellation that arrives meanwhile is dropped and the refresh's result returned."""

    async def refresh(self, thread: ThreadID, token: int) -> bool:
        held = await super().refresh(thread, token)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(IN_FLIGHT_S)
        return held


async def test_a_run_ends_and_frees_its_thread_when_its_refresh_drops_the_cancellation(
    start_runtime: StartRuntime,
    recorder: Recorder,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="squall.target.agent")
    runtime = await start_runtime(lock_ttl_ms=LOCK_TTL_MS, **PACING)
    redis = aioredis.Redis.from_url(settings.redis_url)
    try:
        lock = DroppingLock(redis, settings.redis_prefix, LOCK_TTL_MS)
        runtime._deps.lock = lock

        first = await runtime.submit(USER, THREAD, "hello", "first")
        await recorder.wait_for(lambda: bool(_completion(recorder, first.run_id)))
        # The run ends in its worker and lets go of the thread within about one TTL.
        for _ in range(int(WAIT_S / POLL_S)):
            if not (await runtime.stats())["runs_running"] and not await lock.held(THREAD):
                break
            await asyncio.sleep(POLL_S)
        assert (await runtime.stats())["runs_running"] == 0, "the run never ended in its worker"
        assert not await lock.held(THREAD), "the ended run's lock is still held"
        warned = [r.getMessage() for r in caplog.records if "lock refresh" in r.getMessage()]
        assert warned == [
            f"run {first.run_id} stopped waiting for its lock refresh after {LOCK_TTL_MS} ms"
        ]

        second = await runtime.submit(USER, THREAD, "again", "second")
        await recorder.wait_for(lambda: bool(_completion(recorder, second.run_id)))
        assert _completion(recorder, first.run_id)[0]["status"] == "completed"
        assert _completion(recorder, second.run_id)[0]["status"] == "completed"
    finally:
        await redis.aclose()


def _completion(recorder: Recorder, run: str) -> list[dict[str, object]]:
    return [e for e in recorder.of_type("agent_completed") if e["run_id"] == run]
