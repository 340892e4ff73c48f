"""Fixtures for the runtime's integration tests: settings on a fresh database (``fresh_db``)
and Redis prefix per test, and runtimes started on them."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from runtime_support import Recorder, StartRuntime

from squall.target.runtime import Runtime
from squall.target.settings import Settings


@pytest.fixture
def settings(fresh_db: str, redis_url: str) -> Settings:
    """On the test's own database (``fresh_db``: global queries such as queued runs and
    fairness see only this test); fast model timings: no time-to-first-token, no token
    pacing, two chunks per answer."""
    return Settings(
        database_url=fresh_db,
        redis_url=redis_url,
        redis_prefix=f"rt{secrets.token_hex(4)}",
        model_ttft_ms=0,
        model_tokens_per_second=0,
        model_answer_tokens=8,
        stream_chunk_tokens=4,
        lock_ttl_ms=2_000,
        run_concurrency=8,
    )


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def start_runtime(settings: Settings, recorder: Recorder) -> AsyncIterator[StartRuntime]:
    """Start runtimes ("workers") sharing the test's database; all are closed at the end.

    Keyword arguments that name a ``Settings`` field override it for that runtime; the
    rest go to ``Runtime.start``.
    """
    started: list[Runtime] = []

    async def start(**kwargs: Any) -> Runtime:
        overrides = {k: kwargs.pop(k) for k in list(kwargs) if hasattr(settings, k)}
        kwargs.setdefault("poll_s", 0.1)
        runtime = await Runtime.start(
            settings.replace(**overrides), kwargs.pop("publish", recorder.publish), **kwargs
        )
        started.append(runtime)
        return runtime

    yield start
    for runtime in started:
        await runtime.close(grace_s=1.0)
