"""Event delivery over real sockets: sequence, cross-worker fan-out, resume, isolation, billing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from edge_client import (
    Platform,
    completed,
    open_socket,
    recv,
    recv_until,
    unique,
    user_message,
)

pytestmark = pytest.mark.integration

EVENT_TYPES = {
    "agent_started",
    "tool_executing",
    "tool_completed",
    "agent_thinking",
    "agent_completed",
}
INITIAL_CREDITS = 30


@pytest.fixture(scope="module")
def platform(platform_factory: Callable[..., Platform]) -> Platform:
    return platform_factory(
        workers=2,
        SQUALL_INITIAL_CREDITS=str(INITIAL_CREDITS),
        SQUALL_MAX_SOCKETS_PER_USER="8",
    )


def run_shape(events: list[dict[str, Any]]) -> None:
    """One run's events: the documented order, each with thread/run/seq/ts."""
    kinds = [e["type"] for e in events]
    assert kinds[:3] == ["agent_started", "tool_executing", "tool_completed"], kinds
    assert kinds[-1] == "agent_completed", kinds
    assert set(kinds[3:-1]) == {"agent_thinking"}, kinds
    assert len({e["run_id"] for e in events}) == 1
    for event in events:
        assert isinstance(event["ts"], float)


async def test_full_event_sequence_after_ack(platform: Platform) -> None:
    ws, hello = await open_socket(platform, unique("alice"))
    assert hello["user_id"].startswith("alice")
    thread = unique("t")
    await ws.send(user_message(thread, msg="m1"))
    frames = await recv_until(ws, completed())
    ack, events = frames[0], frames[1:]
    assert ack["type"] == "ack"
    assert ack["client_msg_id"] == "m1"
    assert ack["thread_id"] == thread
    assert all(e["run_id"] == ack["run_id"] for e in events)
    run_shape(events)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["status"] == "completed"
    assert events[-1]["charge"] == 1
    assert events[0]["context"]["history_messages"] >= 1
    # A second run continues the thread's seq without a gap.
    await ws.send(user_message(thread, msg="m2"))
    frames = await recv_until(ws, completed())
    assert frames[0]["type"] == "ack"
    assert [e["seq"] for e in frames[1:]] == list(range(len(events) + 1, len(events) + len(frames)))
    await ws.close()


async def test_events_reach_sockets_on_every_worker(platform: Platform) -> None:
    user = unique("bob")
    sockets = []
    workers: set[int] = set()
    # The kernel spreads connections over the workers' SO_REUSEPORT sockets by a hash of
    # the address pair: 40 tries leave a chance of 2^-39 that all land on one worker. A
    # third socket on the one worker seen so far is closed again, so the user
    # stays under this platform's 8 sockets.
    for _ in range(40):
        ws, hello = await open_socket(platform, user)
        if len(sockets) >= 2 and len(workers) == 1 and hello["worker"] in workers:
            await ws.close()
            continue
        sockets.append(ws)
        workers.add(hello["worker"])
        if len(workers) == 2 and len(sockets) >= 3:
            break
    assert len(workers) == 2, "the kernel never placed a socket on the second worker"
    thread = unique("t")
    await sockets[0].send(user_message(thread))
    sent = await recv_until(sockets[0], completed())
    assert sent[0]["type"] == "ack"
    expected = sent[1:]
    for other in sockets[1:]:
        got = await recv_until(other, completed())
        assert got == expected  # identical frames, no ack on the other sockets
    for ws in sockets:
        await ws.close()


async def wait_for_completion(platform: Platform, user: str, thread: str) -> None:
    """Poll the stored events (bounded) until the thread's run has completed."""
    async with (
        httpx.AsyncClient(base_url=platform.http, headers=platform.headers(user)) as http,
        asyncio.timeout(15),
    ):
        while True:
            reply = await http.get(f"/v1/threads/{thread}/events")
            if any(e["type"] == "agent_completed" for e in reply.json()["events"]):
                return
            await asyncio.sleep(0.05)


async def test_resume_replays_exactly_the_missed_events(platform: Platform) -> None:
    user = unique("carol")
    thread = unique("t")
    first, _ = await open_socket(platform, user)
    await first.send(user_message(thread, msg="r1"))
    seen = await recv_until(first, lambda f: f.get("type") == "agent_started")
    assert seen[0]["type"] == "ack"
    await first.close()  # drop the socket mid-run
    delivered = [f["seq"] for f in seen[1:]]
    await wait_for_completion(platform, user, thread)

    second, _ = await open_socket(platform, user)
    after = delivered[-1]
    await second.send(json.dumps({"type": "resume", "thread_id": thread, "after_seq": after}))
    replay = await recv_until(second, lambda f: f.get("type") == "resume_done")
    done = replay.pop()
    assert replay[0]["seq"] == after + 1
    assert replay[-1]["type"] == "agent_completed"
    delivered += [f["seq"] for f in replay]
    assert done["thread_id"] == thread
    assert done["last_seq"] == delivered[-1]
    # Live events continue after the replay, still gapless.
    await second.send(user_message(thread, msg="r2"))
    live = await recv_until(second, completed())
    assert live[0]["type"] == "ack"
    delivered += [f["seq"] for f in live[1:]]
    assert delivered == list(range(1, len(delivered) + 1))

    # HTTP offers the same history.
    async with httpx.AsyncClient(base_url=platform.http, headers=platform.headers(user)) as http:
        reply = await http.get(f"/v1/threads/{thread}/events", params={"after_seq": 0})
    assert reply.status_code == 200
    assert [e["seq"] for e in reply.json()["events"]] == delivered
    await second.close()


async def test_resume_during_a_live_run_sends_nothing_twice(platform: Platform) -> None:
    user = unique("chuck")
    thread = unique("t")
    ws, _ = await open_socket(platform, user)
    await ws.send(user_message(thread))
    frames = await recv_until(ws, lambda f: f.get("type") == "agent_started")
    await ws.send(json.dumps({"type": "resume", "thread_id": thread, "after_seq": 1}))
    got_done = got_completed = False
    async with asyncio.timeout(15):
        while not (got_done and got_completed):
            frame = await recv(ws)
            frames.append(frame)
            got_done = got_done or frame["type"] == "resume_done"
            got_completed = got_completed or frame["type"] == "agent_completed"
    seqs = [f["seq"] for f in frames if f["type"] in EVENT_TYPES]
    assert seqs == list(range(1, len(seqs) + 1))
    await ws.close()


async def test_resume_of_a_finished_thread(platform: Platform) -> None:
    user = unique("dave")
    thread = unique("t")
    ws, _ = await open_socket(platform, user)
    await ws.send(user_message(thread))
    run = await recv_until(ws, completed())
    total = len(run) - 1
    # This socket delivered every event already: a resume sends none of them again.
    await ws.send(json.dumps({"type": "resume", "thread_id": thread, "after_seq": 0}))
    assert await recv(ws) == {"type": "resume_done", "thread_id": thread, "last_seq": total}
    # A fresh socket gets the whole history, identical to what was streamed.
    fresh, _ = await open_socket(platform, user)
    await fresh.send(json.dumps({"type": "resume", "thread_id": thread, "after_seq": 0}))
    replay = await recv_until(fresh, lambda f: f.get("type") == "resume_done")
    assert replay[:-1] == run[1:]
    assert replay[-1]["last_seq"] == total
    # Resuming beyond the end replays nothing.
    await fresh.send(json.dumps({"type": "resume", "thread_id": thread, "after_seq": total + 5}))
    assert (await recv(fresh))["last_seq"] == total + 5
    await ws.close()
    await fresh.close()


async def test_another_users_socket_gets_nothing(platform: Platform) -> None:
    owner, intruder = unique("erin"), unique("mallory")
    watchers = [(await open_socket(platform, intruder))[0] for _ in range(3)]
    ws, _ = await open_socket(platform, owner)
    thread = unique("t")
    await ws.send(user_message(thread, content="secret plans"))
    await recv_until(ws, completed())
    for watcher in watchers:
        await watcher.send(json.dumps({"type": "ping", "id": 7}))
        assert await recv(watcher) == {"type": "pong", "id": 7, "ts": pytest.approx(0, abs=1e12)}
        with pytest.raises(TimeoutError):
            await recv(watcher, within=0.3)
    # Resume and HTTP reads of the owner's thread look like a missing thread.
    await watchers[0].send(json.dumps({"type": "resume", "thread_id": thread, "after_seq": 0}))
    error = await recv(watchers[0])
    assert error["type"] == "error"
    assert error["code"] == "not_found"
    assert error["thread_id"] == thread
    async with httpx.AsyncClient(base_url=platform.http) as http:
        for path in (f"/v1/threads/{thread}/messages", f"/v1/threads/{thread}/events"):
            reply = await http.get(path, headers=platform.headers(intruder))
            assert reply.status_code == 404, path
            assert reply.json()["code"] == "not_found"
        mine = await http.get(f"/v1/threads/{thread}/messages", headers=platform.headers(owner))
    assert mine.status_code == 200
    contents = [m["content"] for m in mine.json()["messages"]]
    assert "secret plans" in contents
    for sock in [*watchers, ws]:
        await sock.close()


async def test_concurrent_runs_never_overdraw(platform: Platform) -> None:
    user = unique("frank")
    sockets = [(await open_socket(platform, user))[0] for _ in range(4)]
    messages = INITIAL_CREDITS + 10

    async def drive(index: int, ws: Any) -> list[dict[str, Any]]:
        mine = range(index, messages, len(sockets))
        await asyncio.gather(*(ws.send(user_message(unique("t"), msg=f"c{i}")) for i in mine))
        outcome: dict[str, dict[str, Any]] = {}
        runs: dict[str, dict[str, Any]] = {}
        acks: set[str] = set()
        async with asyncio.timeout(30):
            while len(outcome) < len(mine) or len(runs) < len(acks):
                frame = await recv(ws)
                if frame["type"] in ("ack", "error") and frame.get("client_msg_id", "c")[0] == "c":
                    if frame["client_msg_id"] in {f"c{i}" for i in mine}:
                        outcome[frame["client_msg_id"]] = frame
                        if frame["type"] == "ack":
                            acks.add(frame["run_id"])
                elif frame["type"] == "agent_completed" and frame["run_id"] in acks:
                    runs[frame["run_id"]] = frame
        return [*outcome.values(), *runs.values()]

    # Every socket sees every run's events; each counts only its own acks' completions.
    results = await asyncio.gather(*(drive(i, ws) for i, ws in enumerate(sockets)))
    frames = [f for result in results for f in result]
    acks = [f for f in frames if f["type"] == "ack"]
    errors = [f for f in frames if f["type"] == "error"]
    charges = [f["charge"] for f in frames if f["type"] == "agent_completed"]
    assert len(acks) + len(errors) == messages
    assert {e["code"] for e in errors} <= {"insufficient_credits"}
    assert len(acks) == INITIAL_CREDITS
    assert len(charges) == len(acks)
    async with httpx.AsyncClient(base_url=platform.http, headers=platform.headers(user)) as http:
        account = (await http.get("/v1/accounts/me")).json()
    assert account["balance"] == INITIAL_CREDITS - sum(charges)
    assert account["balance"] >= 0
    for ws in sockets:
        await ws.close()
