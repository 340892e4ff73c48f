"""A session's close against a target that never answers close frames, with an HTTP client
whose close hangs: all of it takes one close timeout."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from engine_echo_server import close_ignoring_server

from squall.engine import Session
from squall.engine.client import CLOSE_TIMEOUT_S
from squall.engine.identity import AnonymousIdentities
from squall.metrics.recorder import Recorder

pytestmark = pytest.mark.integration


class _StuckClose(httpx.AsyncBaseTransport):
    """An HTTP transport whose close never finishes, as one stuck on a connection would."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"no request expected, got {request.method} {request.url}")

    async def aclose(self) -> None:
        await asyncio.Event().wait()


@pytest.mark.timeout(60)
async def test_a_session_closes_its_sockets_and_a_stuck_http_client_in_one_close_timeout() -> None:
    recorder = Recorder()
    session = Session(AnonymousIdentities()(0), recorder, time.monotonic, {})
    async with close_ignoring_server() as server:
        await session.connection(server.url)
        await session.connection(server.url + "?second")
        session._http = httpx.AsyncClient(transport=_StuckClose())
        started = time.monotonic()
        async with asyncio.timeout(5 * CLOSE_TIMEOUT_S):
            await session.aclose()
        took = time.monotonic() - started
        assert server.stats.close_frames == 2
    assert CLOSE_TIMEOUT_S <= took < 2 * CLOSE_TIMEOUT_S
    assert session._http is None
    assert recorder.state().counters.get("errors", 0) == 0
