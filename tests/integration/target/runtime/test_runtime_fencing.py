"""Fencing tokens: a writer whose lock was taken over cannot write (unless ``no_fencing``)."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from runtime_support import WAIT_S, Recorder, StartRuntime

from squall.target import events
from squall.target.db import connect
from squall.target.errors import StaleFence
from squall.target.events import EventType
from squall.target.ids import RunID, ThreadID, UserID
from squall.target.locks import RunLock
from squall.target.settings import Settings

pytestmark = pytest.mark.integration

ALICE = UserID("alice")
THREAD = ThreadID("fenced")


@pytest.mark.parametrize("faults", ["", "no_fencing"])
async def test_stale_token_write_is_rejected(
    start_runtime: StartRuntime, settings: Settings, faults: str
) -> None:
    runtime = await start_runtime(claim_runs=False, faults=faults)
    await runtime.submit(ALICE, THREAD, "hello", "c1")
    redis = aioredis.Redis.from_url(settings.redis_url)
    conn = await connect(settings.database_url)
    try:
        # The first holder's lock expires soon; the second's outlives the test, however
        # slowly a loaded machine runs it (the same keys: a TTL is per acquisition).
        brief = RunLock(redis, settings.redis_prefix, ttl_ms=1000)
        lock = RunLock(redis, settings.redis_prefix, ttl_ms=60_000)
        old = await brief.acquire(THREAD)
        assert old is not None
        assert await lock.acquire(THREAD) is None  # held: nobody else gets it
        assert await events.claim_fence(conn, THREAD, old) is None
        await asyncio.sleep(2.0)  # twice the TTL: Redis never returns an expired key
        assert not await lock.held(THREAD)
        new = await lock.acquire(THREAD)
        assert new is not None
        assert new > old
        assert await events.claim_fence(conn, THREAD, new) is None
        assert await events.claim_fence(conn, THREAD, old) == new  # stale cannot go back
        assert not await lock.refresh(THREAD, old)
        assert not await lock.release(THREAD, old)
        assert await lock.held(THREAD)  # the stale release did not delete the new lock

        enforce = not runtime.settings.fault("no_fencing")
        async with conn.transaction():
            await events.append(
                conn, THREAD, RunID("r-new"), EventType.AGENT_STARTED, {}, fence=new
            )
        if enforce:
            with pytest.raises(StaleFence, match=f"fencing token {old}.*fence is {new}"):
                async with conn.transaction():
                    await events.append(
                        conn, THREAD, RunID("r-old"), EventType.AGENT_THINKING, {}, fence=old
                    )
        else:
            async with conn.transaction():
                await events.append(
                    conn,
                    THREAD,
                    RunID("r-old"),
                    EventType.AGENT_THINKING,
                    {},
                    fence=old,
                    enforce_fence=False,
                )
        stored = await runtime.replay(ALICE, THREAD, 0)
        assert [e["run_id"] for e in stored] == (["r-new"] if enforce else ["r-new", "r-old"])
        assert [e["seq"] for e in stored] == list(range(1, len(stored) + 1))
        assert await lock.release(THREAD, new)
    finally:
        await conn.close()
        await redis.aclose()


@pytest.mark.parametrize("faults", ["", "no_fencing"])
async def test_run_that_lost_its_lock_stops_writing(
    start_runtime: StartRuntime, recorder: Recorder, settings: Settings, faults: str
) -> None:
    """A run paused past its lock, then taken over: its later writes are fenced out."""
    gate = asyncio.Event()

    async def gated(seconds: float) -> None:
        await gate.wait()

    runtime = await start_runtime(sleeper=gated, model_ttft_ms=1, faults=faults)
    sub = await runtime.submit(ALICE, THREAD, "hello", "c1")
    await recorder.wait_for(lambda: len(recorder.of_type("tool_completed")) == 1)

    # Another holder takes the thread over, as recovery does after the lock expired.
    redis = aioredis.Redis.from_url(settings.redis_url)
    conn = await connect(settings.database_url)
    try:
        lock = RunLock(redis, settings.redis_prefix, ttl_ms=settings.lock_ttl_ms)
        await redis.delete(lock.lock_key(THREAD))
        token = await lock.acquire(THREAD)
        assert token is not None
        assert await events.claim_fence(conn, THREAD, token) is None
        gate.set()
        if faults:
            await recorder.wait_completed(1)
            assert len(recorder.thread(THREAD)) == 6
        else:
            # Nothing is published once the run is fenced out, so watch the worker's gauge.
            async with asyncio.timeout(WAIT_S):
                while (await runtime.stats())["runs_running"]:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            assert [e["type"] for e in recorder.thread(THREAD)] == [
                "agent_started",
                "tool_executing",
                "tool_completed",
            ]
            status = await conn.fetchval("SELECT status FROM runs WHERE id = $1", sub.run_id)
            assert status == "running"  # left to the holder that took over
            assert await conn.fetchval("SELECT last_seq FROM threads WHERE id = $1", THREAD) == 3
            assert await lock.held(THREAD)  # the fenced run did not release the new lock
    finally:
        await conn.close()
        await redis.aclose()


async def test_a_threads_fence_counter_expires_once_the_thread_is_idle(settings: Settings) -> None:
    # A counter per thread ever used, kept for good: 15,000 keys after a 13-minute soak.
    from squall.target.locks import FENCE_IDLE_MS

    redis = aioredis.Redis.from_url(settings.redis_url)
    try:
        lock = RunLock(redis, settings.redis_prefix, ttl_ms=1000)
        thread = ThreadID("idle-fence")
        token = await lock.acquire(thread)
        assert token is not None
        assert 0 < await redis.pttl(lock.fence_key(thread)) <= FENCE_IDLE_MS
        await lock.release(thread, token)
        await redis.delete(lock.fence_key(thread))  # as if it expired
        await lock.raise_floor(thread, token + 5)  # the database's fence puts it back
        assert int(await redis.get(lock.fence_key(thread))) == token + 5
        assert 0 < await redis.pttl(lock.fence_key(thread)) <= FENCE_IDLE_MS
        assert await lock.acquire(thread) == token + 6
    finally:
        await redis.delete(lock.fence_key(thread), lock.lock_key(thread))
        await redis.aclose()
