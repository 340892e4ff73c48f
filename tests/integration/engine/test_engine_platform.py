"""The engine against the reference platform (2 workers) with 2 generator processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fresh_databases import fresh_database
from squall.engine import run_scenario
from squall.scenarios import websocket_concurrency
from squall.scenarios.target import TargetInfo
from squall.services import Endpoints
from squall.services.platform import start_platform

pytestmark = pytest.mark.integration

FAST_MODEL = {"SQUALL_MODEL_TTFT_MS": "0", "SQUALL_MODEL_TOKENS_PER_SECOND": "100000"}


@pytest.fixture(scope="module")
def platform(endpoints: Endpoints) -> Iterator[TargetInfo]:
    with fresh_database(endpoints, "squall_engine") as database:
        running = start_platform(database, endpoints.redis_url, workers=2, settings=FAST_MODEL)
        try:
            yield TargetInfo(
                ws_url=running.ws_url,
                http_url=running.http_url,
                jwt_secret=running.jwt_secret,
                pids=(running.pid,),
            )
        finally:
            running.stop()
    assert not running.workdir.exists()  # its temporary log folder goes with it


async def test_every_message_is_answered_timed_out_or_errored(platform: TargetInfo) -> None:
    scenario = websocket_concurrency.build(platform, scale=0.1, tag="engine-platform")
    users = scenario.workload.max_users
    result = await run_scenario(scenario, processes=2, progress=False)
    assert result.processes == 2
    assert not result.interrupted
    sent = result.count("messages_sent")
    assert sent == users * websocket_concurrency.MESSAGES
    success = result.rate("success")
    # One outcome per message: completed, rejected by the server, or timed out.
    assert success.total == sent
    rejected = sum(
        result.count(name) for name in result.metrics if name.startswith("errors.server.")
    )
    assert success.passes + rejected + result.count("timeouts") == sent
    assert result.trend("response_time").count == success.passes
    assert result.trend("ws_connect").count == users
    assert result.rate("delivery").rate == 1.0
    assert result.count("seq_gaps") == 0
