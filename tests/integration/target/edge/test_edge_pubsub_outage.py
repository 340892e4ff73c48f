"""Redis restarting in the middle of a run (every pub/sub connection drops, what is
published meanwhile is lost to pub/sub, and the server comes back empty): the socket still
gets every event of the run, in order, once, up to its completion, replayed from storage."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from edge_client import (
    Platform,
    completed,
    gauge,
    open_socket,
    recv,
    recv_until,
    running_platform_on_redis,
    time_scale,
    unique,
    user_message,
    wait_closed,
)
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from squall.services import Endpoints
from squall.services.embedded import EmbeddedValkey

pytestmark = pytest.mark.integration

#: About 2 s of streaming: 200 tokens at 100 tokens / s, 8 per event (some 25 events).
SLOW_MODEL = {"SQUALL_MODEL_TOKENS_PER_SECOND": "100", "SQUALL_MODEL_ANSWER_TOKENS": "200"}


def _on(endpoints: Endpoints, redis: EmbeddedValkey, logs: Path, **env: str) -> Iterator[Platform]:
    """One worker on ``redis`` (so the socket's worker is the one whose pub/sub drops)."""
    with running_platform_on_redis(redis, endpoints, logs, 1, **env) as p:
        yield p


@pytest.fixture
def platform(
    endpoints: Endpoints, redis_server: EmbeddedValkey, tmp_path: Path
) -> Iterator[Platform]:
    yield from _on(endpoints, redis_server, tmp_path, **SLOW_MODEL)


async def test_a_run_streamed_through_a_redis_restart_arrives_whole_and_in_order(
    platform: Platform, redis_server: EmbeddedValkey
) -> None:
    user = unique("outage")
    ws, _ = await open_socket(platform, user)
    events: list[dict[str, Any]] = []
    try:
        await ws.send(user_message(unique("t")))
        ack = await recv(ws)
        assert ack["type"] == "ack", ack
        events.append(await recv(ws))
        # Down from early in the run until well after its end: the completion is published
        # (and lost) while no subscriber listens.
        restart = asyncio.create_task(redis_server.restart(down_s=4 * time_scale()))
        await asyncio.to_thread(wait_closed, redis_server.port)
        async with httpx.AsyncClient() as http:  # metrics answer while Redis is down
            down = (await http.get(f"{platform.http}/metrics")).text
        # A socket cannot be admitted without Redis (socket slots, subscription): it is told.
        refused = await connect(
            platform.ws_url, additional_headers={"Authorization": f"Bearer {platform.token(user)}"}
        )
        error = await recv(refused)
        assert (error["type"], error["code"]) == ("error", "unavailable"), error
        assert error["message"].startswith("Redis is unreachable ("), error
        with pytest.raises(ConnectionClosed):
            await refused.recv()
        assert refused.close_code == 1013
        await restart
        async with asyncio.timeout(30 * time_scale()):
            while events[-1]["type"] != "agent_completed":
                events.append(json.loads(await ws.recv()))
    finally:
        await ws.close()
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs  # no gap, no duplicate
    assert events[0]["type"] == "agent_started"
    assert events[-1]["status"] == "completed"
    assert gauge(down, "squall_target_redis_up") == 0
    assert gauge(down, "squall_target_database_up") == 1
    assert "pub/sub reconnected" in platform.process.log_path.read_text()
    async with httpx.AsyncClient() as http:  # one worker: it answers, and it resynced
        text = (await http.get(f"{platform.http}/metrics")).text
    assert gauge(text, "squall_target_pubsub_resyncs_total") >= 1


@pytest.fixture
def fast_platform(
    endpoints: Endpoints, redis_server: EmbeddedValkey, tmp_path: Path
) -> Iterator[Platform]:
    """Runs that take a few milliseconds: a whole run fits in a pub/sub outage."""
    yield from _on(endpoints, redis_server, tmp_path)


async def test_a_run_acked_on_a_new_thread_while_pub_sub_reconnects_still_arrives(
    fast_platform: Platform, redis_server: EmbeddedValkey
) -> None:
    """Redis is back, the worker's pub/sub not yet (it retries every 0.5 s): the socket's
    first message to a thread is acked and its whole run is published meanwhile, so no
    live event ever starts delivery of that thread on the socket. The resync replays the
    run from its first event (before, the socket never got any of it)."""
    platform = fast_platform
    ws, _ = await open_socket(platform, unique("unseen"))
    try:
        await redis_server.restart()
        await ws.send(user_message(unique("t"), msg="first"))
        ack = await recv(ws)
        assert (ack["type"], ack["client_msg_id"]) == ("ack", "first"), ack
        events = await recv_until(ws, completed(ack["run_id"]), within=30)
    finally:
        await ws.close()
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), seqs  # the whole run, once, in order
    assert events[0]["type"] == "agent_started"


async def test_a_run_another_socket_sent_while_pub_sub_reconnects_reaches_every_socket(
    fast_platform: Platform, redis_server: EmbeddedValkey
) -> None:
    """As above, but the message comes from another socket of the same user: the watching
    socket was acked nothing on that thread and saw nothing of it, so only the resync's
    look at the user's runs since the outage can replay it (before, it never got any of
    it: every event of the thread was published while pub/sub was down)."""
    platform = fast_platform
    user = unique("two")
    sender, _ = await open_socket(platform, user)
    watcher, _ = await open_socket(platform, user)
    try:
        await redis_server.restart()
        await sender.send(user_message(unique("t"), msg="first"))
        ack = await recv(sender)
        assert (ack["type"], ack["client_msg_id"]) == ("ack", "first"), ack
        sent = await recv_until(sender, completed(ack["run_id"]), within=30)
        watched = await recv_until(watcher, completed(ack["run_id"]), within=30)
    finally:
        await sender.close()
        await watcher.close()
    for events in (sent, watched):
        seqs = [e["seq"] for e in events]
        assert seqs == list(range(1, len(seqs) + 1)), seqs  # the whole run, once, in order
    assert [e["seq"] for e in watched] == [e["seq"] for e in sent]
