"""A PostgreSQL that refuses new connections ("too many clients") while runs are in flight.

Another platform on a shared server can hold every connection it allows for a while;
new connections are then refused with ``TooManyConnectionsError`` and the connections a
worker had may be gone too. Here the platform connects as a role of the test's own whose
``CONNECTION LIMIT`` is dropped to 0 (and whose backends are terminated) while its runs
store their events, then restored, which refuses connections the same way without
touching anyone else's on the server. A refusal shorter than
``SQUALL_DATABASE_OUTAGE_WAIT_S`` is waited out: every run completes. A longer one fails
the runs in flight; each is then ended (failed and refunded) by the orphan sweep of its own
worker, the only one, its thread lock is not left held, and every thread's next message
completes.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis.asyncio as aioredis
from runtime_support import WAIT_S, Recorder, StartRuntime

from squall.services import Endpoints
from squall.target.ids import ThreadID, UserID
from squall.target.locks import RunLock
from squall.target.runtime import Runtime
from squall.target.settings import Settings

pytestmark = pytest.mark.integration

USER = UserID("limited")
THREADS = [ThreadID(f"limited-{i}") for i in range(6)]
#: Model pacing: 24 one-token chunks at 8 tokens/s, about 3 s of events per run, so runs
#: are storing events when the connections are cut (which takes a while on a busy host: the
#: six runs start one after another, and the cut opens a connection of its own).
PACING = {"model_tokens_per_second": 8.0, "model_answer_tokens": 24, "stream_chunk_tokens": 1}


@dataclass(frozen=True)
class LimitedRole:
    """A login role of the test's own and the database it owns (what the platform uses)."""

    name: str
    database_url: str
    admin_url: str

    async def cut(self) -> None:
        """Refuse the role's new connections and terminate the ones it has."""
        admin = await asyncpg.connect(self.admin_url)
        try:
            await admin.execute(f'ALTER ROLE "{self.name}" CONNECTION LIMIT 0')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
                self.name,
            )
        finally:
            await admin.close()

    async def restore(self) -> None:
        admin = await asyncpg.connect(self.admin_url)
        try:
            await admin.execute(f'ALTER ROLE "{self.name}" CONNECTION LIMIT -1')
        finally:
            await admin.close()


@pytest.fixture
async def limited(endpoints: Endpoints) -> AsyncIterator[LimitedRole]:
    admin_url = endpoints.database_url
    name = f"squall_limited_{secrets.token_hex(4)}"
    parts = urlsplit(admin_url)
    netloc = f"{name}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    url = urlunsplit((parts.scheme, netloc, "/" + name, parts.query, parts.fragment))
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE ROLE "{name}" LOGIN')
        await admin.execute(f'CREATE DATABASE "{name}" OWNER "{name}"')
        try:
            (await asyncpg.connect(url)).terminate()
        except (asyncpg.InvalidAuthorizationSpecificationError, asyncpg.InvalidPasswordError):
            pytest.skip("the server does not let a new role without a password log in")
        yield LimitedRole(name, url, admin_url)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'DROP ROLE IF EXISTS "{name}"')
        await admin.close()


@pytest.fixture
def fresh_db(limited: LimitedRole) -> str:
    """The runtime's database: the limited role's (replaces the conftest's)."""
    return limited.database_url


async def _submit_all(runtime: Runtime, round_: str) -> dict[ThreadID, str]:
    runs = {}
    for thread in THREADS:
        submitted = await runtime.submit(USER, thread, f"hello {round_}", f"{round_}-{thread}")
        runs[thread] = submitted.run_id
    return runs


def _completions(recorder: Recorder, runs: dict[ThreadID, str]) -> dict[str, dict[str, object]]:
    wanted = set(runs.values())
    return {e["run_id"]: e for e in recorder.of_type("agent_completed") if e["run_id"] in wanted}


async def _cut_while_running(
    limited: LimitedRole, recorder: Recorder, runs: dict[ThreadID, str], down_s: float
) -> None:
    """Cut the role's connections once every run has stored an event, for ``down_s``."""
    wanted = set(runs.values())
    await recorder.wait_for(
        lambda: wanted <= {e["run_id"] for e in recorder.of_type("agent_thinking")}
    )
    await limited.cut()
    try:
        await asyncio.sleep(down_s)
    finally:
        await limited.restore()


async def test_runs_wait_out_a_server_that_refuses_connections(
    start_runtime: StartRuntime, recorder: Recorder, limited: LimitedRole
) -> None:
    runtime = await start_runtime(database_outage_wait_s=WAIT_S, **PACING)
    runs = await _submit_all(runtime, "first")
    await _cut_while_running(limited, recorder, runs, down_s=2.0)

    await recorder.wait_for(lambda: len(_completions(recorder, runs)) == len(runs))
    statuses = {e["status"] for e in _completions(recorder, runs).values()}
    assert statuses == {"completed"}


async def test_a_run_whose_end_cannot_be_stored_is_ended_by_its_own_worker(
    start_runtime: StartRuntime,
    recorder: Recorder,
    limited: LimitedRole,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="squall.target.agent")
    # The runs give up long before the connections come back: each fails, cannot store
    # its end either, and is left to orphan recovery by the only worker there is.
    runtime = await start_runtime(database_outage_wait_s=0.3, **PACING)
    first = await _submit_all(runtime, "first")
    await _cut_while_running(limited, recorder, first, down_s=2.0)

    await recorder.wait_for(lambda: len(_completions(recorder, first)) == len(first))
    for completion in _completions(recorder, first).values():
        assert (completion["status"], completion["charge"]) == ("failed", 0), completion
    gave_up = [r.getMessage() for r in caplog.records if "gave up" in r.getMessage()]
    assert gave_up, "no run logged that it gave up waiting for the database"
    assert "SQUALL_DATABASE_OUTAGE_WAIT_S" in gave_up[0]
    assert any(run in gave_up[0] for run in first.values()), gave_up[0]

    # Every thread takes its next message: no lock or running run is left behind.
    second = await _submit_all(runtime, "second")
    await recorder.wait_for(lambda: len(_completions(recorder, second)) == len(second))
    statuses = {e["status"] for e in _completions(recorder, second).values()}
    assert statuses == {"completed"}
    account = await runtime.account(USER)
    assert (account["runs_refunded"], account["runs_charged"]) == (len(first), len(second))
    redis = aioredis.Redis.from_url(settings.redis_url)
    try:
        lock = RunLock(redis, settings.redis_prefix, settings.lock_ttl_ms)
        assert not [t for t in THREADS if await lock.held(t)]
    finally:
        await redis.aclose()
