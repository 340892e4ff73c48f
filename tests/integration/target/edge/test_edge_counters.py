"""The summed ``/metrics`` counters against a Redis of the test's own that stalls and
comes back empty: each worker's totals are written as they are, so a flush that Redis runs
twice counts nothing twice, and an emptied Redis gets the running workers' totals back."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from squall.services.embedded import EmbeddedValkey
from squall.target import redis_pool
from squall.target.metrics import Counters
from squall.target.settings import Settings

pytestmark = pytest.mark.integration


async def test_a_flush_redis_runs_twice_counts_once(redis_server: EmbeddedValkey) -> None:
    # With increments (HINCRBYFLOAT), the flush sent while Redis was paused ran once when
    # it timed out and again when it was sent anew: a socket opened once counted twice.
    settings = Settings(redis_url=redis_server.url, redis_command_timeout_s=0.3)
    redis = redis_pool.connect(settings, decode_responses=True)
    worker, other = Counters(redis, "p", "w1"), Counters(redis, "p", "w2")
    try:
        worker.inc("sockets_opened_total")
        await worker.flush()
        os.kill(redis_server.process.pid, signal.SIGSTOP)
        try:
            worker.inc("sockets_opened_total")
            # Sent, timed out and sent again (up to 3 times) while the server sleeps.
            await asyncio.wait_for(worker.flush(), 10)
        finally:
            os.kill(redis_server.process.pid, signal.SIGCONT)
        await worker.flush()
        assert await other.totals() == {"sockets_opened_total": 2.0}
        # Redis comes back empty: the worker's totals are whole again at its next flush.
        await redis_server.restart()
        await worker.flush()
        assert await other.totals() == {"sockets_opened_total": 2.0}
    finally:
        await redis.aclose()


async def test_totals_sum_the_workers_and_count_the_answering_ones_unflushed(
    redis_server: EmbeddedValkey,
) -> None:
    redis = redis_pool.connect(Settings(redis_url=redis_server.url), decode_responses=True)
    first, second = Counters(redis, "p", "w1"), Counters(redis, "p", "w2")
    try:
        first.inc('errors_total{code="bad|frame"}', 3)
        await first.flush()
        second.inc('errors_total{code="bad|frame"}')  # not flushed yet
        second.inc("frames_sent_total", 2)
        expected = {'errors_total{code="bad|frame"}': 4.0, "frames_sent_total": 2.0}
        assert await second.totals() == expected
        assert await first.totals() == {'errors_total{code="bad|frame"}': 3.0}
        assert await Counters(redis, "other", "w3").totals() == {}  # another prefix
    finally:
        await redis.aclose()
