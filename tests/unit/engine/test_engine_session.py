"""The session's own state, without sockets."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from squall.engine import session as engine_session
from squall.engine.identity import AnonymousIdentities
from squall.engine.session import Session
from squall.metrics.recorder import Recorder


def _session() -> Session:
    return Session(AnonymousIdentities()(0), Recorder(), time.monotonic, {"url": "ws://x"})


def test_a_behaviour_may_keep_attributes_of_its_own_on_the_session() -> None:
    session = _session()
    session.thread_id = "t-1"  # type: ignore[attr-defined]
    session.state["seen"] = 3
    assert session.thread_id == "t-1"  # type: ignore[attr-defined]
    assert session.state == {"seen": 3}
    assert session.params["url"] == "ws://x"


def test_begin_iteration_counts_and_sets_the_pending_origin() -> None:
    session = _session()
    session.begin_iteration(0, schedule_lag=0.5)
    assert (session.iteration, session.iterations_started) == (0, 1)
    assert session.origin.pending == 0.5
    assert session.take_origin(2.0) == 1.5
    assert session.origin.pending is None
    session.begin_iteration(1, schedule_lag=None)
    assert (session.iteration, session.iterations_started) == (1, 2)
    assert session.take_origin(3.0) == 3.0


class _StuckClose(httpx.AsyncBaseTransport):
    """An HTTP transport whose close never finishes, as one stuck on a connection would."""

    def __init__(self) -> None:
        self.closing = asyncio.Event()
        self.cancelled = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"no request expected, got {request.method} {request.url}")

    async def aclose(self) -> None:
        self.closing.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise


async def test_an_http_close_that_hangs_is_given_up_after_the_close_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine_session, "CLOSE_TIMEOUT_S", 0.2)
    session = _session()
    transport = _StuckClose()
    session._http = httpx.AsyncClient(transport=transport)
    started = time.monotonic()
    async with asyncio.timeout(10.0):
        await session.aclose()
    took = time.monotonic() - started
    assert transport.closing.is_set()
    assert transport.cancelled
    assert 0.2 <= took < 1.5
    assert session._http is None
