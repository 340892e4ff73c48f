"""Run wake-ups coalesce: a burst of ``notify`` calls publishes twice, the last one after all."""

from __future__ import annotations

import asyncio
import secrets

import pytest
import redis.asyncio as aioredis

from squall.target import redis_pool
from squall.target.scheduler import Scheduler
from squall.target.settings import Settings

pytestmark = pytest.mark.integration

BURST = 40


async def _no_recovery() -> None:
    return None


async def test_a_burst_of_notifies_costs_two_publishes(redis_url: str) -> None:
    settings = Settings(redis_url=redis_url)
    channel = f"wake-{secrets.token_hex(4)}"
    redis = redis_pool.connect(settings)
    listener = aioredis.Redis.from_url(redis_url)
    pubsub = listener.pubsub()
    scheduler = Scheduler(
        pool=None,
        redis=redis,
        listener=redis_pool.connect_pubsub(settings, "scheduler"),
        channel=channel,
        worker="w1",
        free_slots=lambda: 0,
        start_run=lambda run: None,
        recover=_no_recovery,
    )
    try:
        await pubsub.subscribe(channel)
        assert (await pubsub.get_message(timeout=5.0) or {}).get("type") == "subscribe"
        await asyncio.gather(*(scheduler.notify() for _ in range(BURST)))
        await scheduler.notify()  # after the burst: published on its own
        received = []
        while (message := await pubsub.get_message(timeout=0.5)) is not None:
            received.append(message["data"])
        assert received == [b"w1", b"w1", b"w1"]
    finally:
        await scheduler.stop()
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await listener.aclose()
        await redis.aclose()
