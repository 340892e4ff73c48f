"""A worker that begins to shut down claims no more runs while its sockets close.

One worker's edge in this process, on a database of the test's own and the real Redis.
Once it drains (``Edge.drain``: what a SIGTERM starts, before the sockets' close
handshakes and the runtime's grace), a run submitted through it is left to another
worker: the draining one, whose scheduler is still up and woken by the submit, does
not take it.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from edge_client import time_scale

from squall.target.edge import Edge
from squall.target.ids import ThreadID, UserID
from squall.target.runtime import Runtime
from squall.target.settings import Settings

pytestmark = pytest.mark.integration

WAIT_S = 20.0 * time_scale()


@pytest.fixture
def settings(fresh_db: str, redis_url: str) -> Settings:
    return Settings(
        database_url=fresh_db,
        redis_url=redis_url,
        redis_prefix=f"drain{secrets.token_hex(4)}",
        model_ttft_ms=0,
        model_tokens_per_second=0,
        model_answer_tokens=8,
        stream_chunk_tokens=4,
    )


@pytest.fixture
async def edge(settings: Settings) -> AsyncIterator[Edge]:
    edge = Edge(settings)
    await edge.start()
    try:
        yield edge
    finally:
        await edge.close()


async def test_a_draining_worker_leaves_the_runs_queued_meanwhile_to_another(
    edge: Edge, settings: Settings
) -> None:
    draining = edge.runtime
    await edge.drain()
    submitted = await draining.submit(UserID("alice"), ThreadID("late"), "hello", "c1")
    completed = asyncio.Event()

    async def publish(user: UserID, event: dict[str, Any]) -> None:
        if event["type"] == "agent_completed" and event["run_id"] == submitted.run_id:
            completed.set()

    other = await Runtime.start(settings, publish, poll_s=0.1)
    conn = await asyncpg.connect(settings.database_url)
    try:
        async with asyncio.timeout(WAIT_S):  # runs out if the draining worker ran it
            await completed.wait()
        row = await conn.fetchrow("SELECT status, worker FROM runs WHERE id = $1", submitted.run_id)
        assert row is not None
        assert (row["status"], row["worker"]) == ("completed", other.worker), (
            f"the draining worker is {draining.worker!r}"
        )
    finally:
        await other.close(grace_s=1.0)
        await conn.close()
