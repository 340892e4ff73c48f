"""Redis that stops answering without closing its connections (a paused process, a network
partition, a server stuck in a long command) in the middle of runs: commands fail after
``SQUALL_REDIS_COMMAND_TIMEOUT_S`` instead of waiting for it, and once it answers again
every run ends (completed, or failed and refunded), every socket has each run's events in
order, and every thread takes new messages; a run's last event whose publish failed meanwhile
is published again once Redis answers (``/metrics`` shows it waiting, then counts it)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from edge_client import (
    Platform,
    completed,
    counter_reaches,
    gauge,
    open_socket,
    recv,
    recv_until,
    running_platform_on_redis,
    time_scale,
    unique,
    user_message,
)

from squall.services import Endpoints
from squall.services.embedded import EmbeddedValkey

pytestmark = pytest.mark.integration

#: About 2 s of streaming per run: 200 tokens at 100 tokens / s.
SLOW_MODEL = {"SQUALL_MODEL_TOKENS_PER_SECOND": "100", "SQUALL_MODEL_ANSWER_TOKENS": "200"}
#: A command waits half a second for an answer: with its 3 resends, about 2 s in all.
COMMAND_TIMEOUT = {"SQUALL_REDIS_COMMAND_TIMEOUT_S": "0.5"}
THREADS = 4
#: Longer than the lock TTL (5 s): every run's lock is gone when Redis answers again.
PAUSE_S = 10.0
#: A run that waits 1.5 s for its one-token answer: its last two events are published while
#: Redis is paused, each failing after about 2 s.
LATE_END_MODEL = {"SQUALL_MODEL_TTFT_MS": "1500", "SQUALL_MODEL_ANSWER_TOKENS": "1"}
#: The frames of such a run, in order.
RUN_FRAMES = ["agent_started", "tool_executing", "tool_completed", "agent_thinking"]


@pytest.fixture
def platform(
    endpoints: Endpoints, redis_server: EmbeddedValkey, tmp_path: Path
) -> Iterator[Platform]:
    with running_platform_on_redis(
        redis_server, endpoints, tmp_path, 2, **SLOW_MODEL, **COMMAND_TIMEOUT
    ) as started:
        yield started


@pytest.fixture
def late_end_platform(
    endpoints: Endpoints, redis_server: EmbeddedValkey, tmp_path: Path
) -> Iterator[Platform]:
    with running_platform_on_redis(
        redis_server, endpoints, tmp_path, 2, **LATE_END_MODEL, **COMMAND_TIMEOUT
    ) as started:
        yield started


@pytest.fixture
def one_late_end_worker(
    endpoints: Endpoints, redis_server: EmbeddedValkey, tmp_path: Path
) -> Iterator[Platform]:
    """One worker: every ``/metrics`` answer is that of the worker whose publish failed."""
    with running_platform_on_redis(
        redis_server, endpoints, tmp_path, 1, **LATE_END_MODEL, **COMMAND_TIMEOUT
    ) as started:
        yield started


def answers(msg: str) -> Any:
    def done(frame: dict[str, Any]) -> bool:
        return frame.get("client_msg_id") == msg

    return done


def in_order(frames: list[dict[str, Any]], run: str) -> list[int]:
    return [f["seq"] for f in frames if f.get("run_id") == run and "seq" in f]


async def test_runs_end_and_threads_go_on_after_redis_stops_answering_for_a_while(
    platform: Platform, redis_server: EmbeddedValkey
) -> None:
    threads = [unique("paused") for _ in range(THREADS)]
    sockets = [(await open_socket(platform, unique("pause")))[0] for _ in threads]
    seen: list[list[dict[str, Any]]] = [[] for _ in sockets]
    pid = redis_server.process.pid
    try:
        runs = []
        for ws, thread, frames in zip(sockets, threads, seen, strict=True):
            await ws.send(user_message(thread, msg="before"))
            frames += await recv_until(ws, answers("before"))
            assert frames[-1]["type"] == "ack", frames[-1]
            runs.append(frames[-1]["run_id"])
        for ws, frames in zip(sockets, seen, strict=True):  # every run is in flight
            frames += await recv_until(ws, lambda f: f.get("type") == "agent_started")
        os.kill(pid, signal.SIGSTOP)
        paused_at = time.monotonic()
        try:
            # A message sent meanwhile is answered while Redis is still silent: its rate
            # limit cannot be taken, so it is refused as `unavailable`.
            await sockets[0].send(user_message(unique("silent"), msg="silent"))
            seen[0] += await recv_until(sockets[0], answers("silent"), within=PAUSE_S * 0.6)
            refused = seen[0][-1]
            assert time.monotonic() - paused_at < PAUSE_S * 0.6
            assert (refused["type"], refused["code"]) == ("error", "unavailable"), refused
            assert refused["message"].startswith("Redis is unreachable ("), refused
            await asyncio.sleep(PAUSE_S * time_scale() - (time.monotonic() - paused_at))
        finally:
            os.kill(pid, signal.SIGCONT)
        for ws, run, frames in zip(sockets, runs, seen, strict=True):
            frames += await recv_until(ws, completed(run), within=60)
            end = frames[-1]
            assert end["status"] in ("completed", "failed"), end
            if end["status"] == "failed":
                assert end["charge"] == 0, end  # refunded
            seqs = in_order(frames, run)
            assert seqs == list(range(1, len(seqs) + 1)), seqs  # no gap, no duplicate
        # Every thread takes a new message, and its run completes.
        for ws, thread in zip(sockets, threads, strict=True):
            await ws.send(user_message(thread, msg="after"))
        for ws in sockets:
            ack = await recv(ws, within=30)
            assert ack["type"] == "ack", ack
            frames = await recv_until(ws, completed(ack["run_id"]), within=30)
            assert frames[-1]["status"] == "completed", frames[-1]
    finally:
        os.kill(pid, signal.SIGCONT)
        for ws in sockets:
            await ws.close()
    log = platform.process.log_path.read_text()
    assert "Timeout reading from" in log  # commands failed rather than waited


async def logged(platform: Platform, text: str, within: float) -> None:
    """Return once the platform's log holds ``text``; fail after ``within`` seconds."""
    for _ in range(int(within * time_scale() / 0.1)):
        if text in platform.process.log_path.read_text():
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"the platform did not log {text!r} within {within} s")


async def test_a_runs_last_event_whose_publish_failed_arrives_once_redis_answers(
    late_end_platform: Platform, redis_server: EmbeddedValkey
) -> None:
    """Nothing follows ``agent_completed`` on its thread to show the sockets a gap, and a
    Redis paused for less than the hubs take to notice their silent pub/sub connections keeps
    them connected, so no resync comes: only publishing it again brings it. (This pause is
    longer, so a resync comes too: together they send nothing twice.)"""
    platform = late_end_platform
    user, thread = unique("late-end"), unique("late-end")
    # Two sockets of the user (on one worker or both): the sender, and one that only listens.
    sockets = [(await open_socket(platform, user))[0] for _ in range(2)]
    seen: list[list[dict[str, Any]]] = [[] for _ in sockets]
    pid = redis_server.process.pid
    try:
        await sockets[0].send(user_message(thread, msg="late"))
        ack = await recv(sockets[0])
        assert ack["type"] == "ack", ack
        run = ack["run_id"]
        for ws, frames in zip(sockets, seen, strict=True):
            frames += await recv_until(ws, lambda f: f.get("type") == "tool_completed")
        os.kill(pid, signal.SIGSTOP)
        try:
            # The answer's one token and then the completion are published into the pause:
            # both publishes give up (about 2 s each with 0.5 s per command).
            await logged(platform, "publishing agent_completed seq", within=20)
        finally:
            os.kill(pid, signal.SIGCONT)
        for ws, frames in zip(sockets, seen, strict=True):
            frames += await recv_until(ws, completed(run), within=10)
            assert [f["type"] for f in frames if f.get("run_id") == run] == [
                *RUN_FRAMES,
                "agent_completed",
            ], frames
            seqs = in_order(frames, run)
            assert seqs == list(range(1, len(seqs) + 1)), seqs  # in order, no duplicate
            assert frames[-1]["status"] == "completed", frames[-1]
        for ws in sockets:  # and nothing comes twice
            with pytest.raises(TimeoutError):
                await recv(ws, within=1.5)
    finally:
        os.kill(pid, signal.SIGCONT)
        for ws in sockets:
            await ws.close()
    assert "Redis answers again: published" in platform.process.log_path.read_text()


async def test_metrics_show_the_event_waiting_to_be_published_again_then_count_it(
    one_late_end_worker: Platform, redis_server: EmbeddedValkey
) -> None:
    platform = one_late_end_worker
    ws, _ = await open_socket(platform, unique("backlog"))
    pid = redis_server.process.pid
    try:
        await ws.send(user_message(unique("backlog"), msg="late"))
        ack = await recv(ws)
        assert ack["type"] == "ack", ack
        await recv_until(ws, lambda f: f.get("type") == "tool_completed")
        os.kill(pid, signal.SIGSTOP)
        try:
            await logged(platform, "publishing agent_completed seq", within=20)
            async with httpx.AsyncClient(timeout=30 * time_scale()) as http:
                paused = (await http.get(f"{platform.http}/metrics")).text
        finally:
            os.kill(pid, signal.SIGCONT)
        await recv_until(ws, completed(ack["run_id"]), within=10)
    finally:
        os.kill(pid, signal.SIGCONT)
        await ws.close()
    # The thread's newest failed event waits; none was published again yet.
    assert gauge(paused, "squall_target_pubsub_republish_backlog") == 1
    assert gauge(paused, "squall_target_pubsub_republished_total") == 0
    assert "# TYPE squall_target_pubsub_republish_backlog gauge" in paused
    assert "# TYPE squall_target_pubsub_republished_total counter" in paused
    assert await counter_reaches(platform, "squall_target_pubsub_republished_total", 1) == 1
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{platform.http}/metrics")).text
    assert gauge(text, "squall_target_pubsub_republish_backlog") == 0
