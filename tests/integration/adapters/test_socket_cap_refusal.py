"""The reference adapter against a platform allowing one socket per user: the second is
refused at admission (``error too_many_sockets``, then close 1008), and the chat counts
that as the server's error, once, whether the close came before its message or after."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from fresh_databases import fresh_database
from squall.adapters.chat import open_chat
from squall.engine.errors import ConnectionClosed
from squall.engine.identity import Identity, jwt_identities
from squall.engine.session import Session
from squall.metrics.recorder import Recorder
from squall.services import Endpoints
from squall.services.platform import RunningPlatform, start_platform

pytestmark = pytest.mark.integration

WAIT_S = 10.0


@pytest.fixture(scope="module")
def platform(endpoints: Endpoints) -> Iterator[RunningPlatform]:
    with fresh_database(endpoints, "squall_refusal") as database:
        running = start_platform(
            database,
            endpoints.redis_url,
            workers=1,
            settings={"SQUALL_MAX_SOCKETS_PER_USER": "1", "SQUALL_MODEL_TTFT_MS": "0"},
        )
        try:
            yield running
        finally:
            running.stop()


def session_of(identity: Identity, url: str, closed: asyncio.Event | None = None) -> Session:
    """A session for ``identity``; ``closed`` is set when one of its sockets closes."""

    def opened(change: int) -> None:
        if change < 0 and closed is not None:
            closed.set()

    return Session(identity, Recorder(), time.monotonic, {"ws_url": url}, on_connection=opened)


async def chat_refused(session: Session, closed: asyncio.Event | None) -> None:
    """Open the user's second socket and chat once: after its close when ``closed`` is
    given (the error frame still unread), else at once."""
    async with open_chat(session, planned=2) as chat:
        if closed is not None:
            async with asyncio.timeout(WAIT_S):
                await closed.wait()
        await chat.chat(f"{session.identity.user_id}-t", "hello", timeout=WAIT_S)


@pytest.mark.parametrize("after_the_close", [True, False], ids=["after-close", "at-once"])
async def test_a_socket_over_the_cap_counts_as_the_servers_refusal(
    platform: RunningPlatform, after_the_close: bool
) -> None:
    user = jwt_identities(platform.jwt_secret, prefix=f"capped-{after_the_close}")(0)
    holder = session_of(user, platform.ws_url)
    closed = asyncio.Event() if after_the_close else None
    refused = session_of(user, platform.ws_url, closed)
    try:
        async with open_chat(holder) as kept:
            # Admitted once its hello came: the user's one socket is taken.
            assert (await kept.ws.recv_json(timeout=WAIT_S))["type"] == "hello"
            with pytest.raises(ConnectionClosed) as raised:
                await chat_refused(refused, closed)
    finally:
        await refused.aclose()
        await holder.aclose()
    assert (raised.value.code, raised.value.reason) == (1008, "too_many_sockets")
    recorder = refused.recorder
    counted = {
        name: n for name, n in recorder.state().counters.items() if name.startswith("errors")
    }
    assert counted == {"errors": 1, "errors.server.too_many_sockets": 1}
    (sample,) = recorder.state().error_samples["server.too_many_sockets"]
    assert sample.startswith("error too_many_sockets naming no message: user 'capped-")
    # The message tried and the one never tried both failed.
    assert recorder.state().rates["success"] == (0, 2)
    assert holder.recorder.counter("errors") == 0
