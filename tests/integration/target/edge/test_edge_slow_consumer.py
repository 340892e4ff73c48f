"""A socket that stops reading is closed as a slow consumer, and its user's other socket
gets every event meanwhile, over real TCP.

The client stops reading (the ``websockets`` client stops reading from its socket once
``max_queue`` frames wait unread; its receive buffer is kept small); the kernel's
buffers fill, then the platform's
transport, then the socket's send queue (``SQUALL_SOCKET_SEND_QUEUE``). The platform then
closes that socket with 1008 rather than hold the run's events for it; the other socket,
on the same worker, never waits for it. The closed socket's client resumes from the last
``seq`` it read and gets the rest. A client that takes no data at all for
``SQUALL_SOCKET_WRITE_TIMEOUT_S`` once those buffers are full loses its connection.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]
import pytest
from edge_client import (
    TIMEOUT_S,
    Platform,
    completed,
    counter_reaches,
    gauge,
    open_socket,
    recv_until,
    time_scale,
    unique,
    user_message,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

pytestmark = pytest.mark.integration

#: Bytes of the client's receive buffer (SO_RCVBUF; the kernel doubles it).
CLIENT_RCVBUF = 32 * 1024
CHUNK_TOKENS = 2_000
SEND_QUEUE = 16


def answer_tokens() -> int:
    """Tokens for one run whose thinking events (about 7 bytes a token) take more than
    twice what the platform's side of the socket can buffer: the kernel's send buffer
    grows up to ``tcp_wmem``'s maximum (4 MB by default; on loopback it does), plus the
    transport's 64 KB and the client's small receive buffer."""
    try:
        wmem_max = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, IndexError, ValueError):
        wmem_max = 4 * 1024 * 1024
    return max(1_200_000, 2 * (wmem_max + 2**20) // 7)


async def stalled_socket(platform: Platform, user: str) -> ClientConnection:
    """A socket of ``user`` that reads its ``hello`` and then nothing: ``max_queue=1``
    makes the client stop reading from the socket once one frame waits unread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_RCVBUF)  # before connect
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", platform.port))
    ws = await connect(
        platform.ws_url,
        sock=sock,
        additional_headers={"Authorization": f"Bearer {platform.token(user)}"},
        max_size=None,
        max_queue=1,
    )
    hello = json.loads(await ws.recv())
    assert hello["type"] == "hello", hello
    return ws


async def read_until_closed(ws: ClientConnection) -> tuple[list[dict[str, Any]], ConnectionClosed]:
    """Every frame ``ws`` receives until it closes, and how it closed."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(TIMEOUT_S * time_scale()):
        while True:
            try:
                frames.append(json.loads(await ws.recv()))
            except ConnectionClosed as closed:
                return frames, closed


def long_run_platform(factory: Callable[..., Platform], **env: str) -> Platform:
    """One worker whose runs stream :func:`answer_tokens` as fast as it can."""
    return factory(
        workers=1,
        SQUALL_MODEL_ANSWER_TOKENS=str(answer_tokens()),
        SQUALL_STREAM_CHUNK_TOKENS=str(CHUNK_TOKENS),
        SQUALL_MODEL_TOKENS_PER_SECOND="100000000",
        **env,
    )


async def long_run_beside_a_stalled_socket(
    platform: Platform, user: str, thread: str
) -> tuple[ClientConnection, ClientConnection, list[dict[str, Any]]]:
    """Two sockets of ``user``, one of them stalled; one long run on ``thread``, which
    the other socket (returned first) reads whole, in order, while the stalled one reads
    nothing. Returns both sockets and the run's events."""
    reader, _ = await open_socket(platform, user)
    stalled = await stalled_socket(platform, user)
    await reader.send(user_message(thread, msg="long"))
    frames = await recv_until(reader, completed(), within=4 * TIMEOUT_S)
    events = [f for f in frames if "seq" in f]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert len(events) > answer_tokens() // CHUNK_TOKENS
    return reader, stalled, events


@pytest.fixture(scope="module")
def platform(platform_factory: Callable[..., Platform]) -> Platform:
    return long_run_platform(
        platform_factory,
        SQUALL_SOCKET_SEND_QUEUE=str(SEND_QUEUE),
        # The stalled client reads again only after the reader's whole run.
        SQUALL_SOCKET_WRITE_TIMEOUT_S="0",
    )


async def test_a_socket_that_stops_reading_is_closed_and_the_other_gets_every_event(
    platform: Platform,
) -> None:
    user, thread = unique("stall"), unique("t")
    reader, stalled, events = await long_run_beside_a_stalled_socket(platform, user, thread)

    # The stalled socket now reads: what was buffered, then the platform's close.
    read, closed = await read_until_closed(stalled)
    assert closed.rcvd is not None, "the platform never closed the stalled socket"
    assert closed.rcvd.code == 1008
    assert "slow consumer" in closed.rcvd.reason
    seqs = [f["seq"] for f in read if "seq" in f]
    assert seqs == list(range(1, len(seqs) + 1))  # in order, no gap, nothing twice
    assert len(seqs) < len(events)

    # Resuming from there brings the rest, although the replay is far longer than the
    # send queue: a client that reads is never taken for a slow one.
    again, _ = await open_socket(platform, user)
    await again.send(json.dumps({"type": "resume", "thread_id": thread, "after_seq": len(seqs)}))
    replay = await recv_until(again, lambda f: f.get("type") == "resume_done", 4 * TIMEOUT_S)
    assert [f["seq"] for f in replay if "seq" in f] == list(range(len(seqs) + 1, len(events) + 1))
    assert replay[-1]["last_seq"] == len(events)
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{platform.http}/metrics")).text
    assert gauge(text, "squall_target_slow_consumer_closes_total") >= 1
    await reader.close()
    await again.close()


WRITE_TIMEOUT_S = 1.0
#: Twice the frames of one run: a send queue the run cannot fill.
ROOMY_SEND_QUEUE = 2 * answer_tokens() // CHUNK_TOKENS + 100


@pytest.fixture(scope="module")
def impatient_platform(platform_factory: Callable[..., Platform]) -> Platform:
    """A short write timeout, and a send queue one run cannot fill."""
    return long_run_platform(
        platform_factory,
        SQUALL_SOCKET_WRITE_TIMEOUT_S=str(WRITE_TIMEOUT_S),
        SQUALL_SOCKET_SEND_QUEUE=str(ROOMY_SEND_QUEUE),
    )


async def metrics(platform: Platform) -> str:
    async with httpx.AsyncClient() as http:
        return (await http.get(f"{platform.http}/metrics")).text


async def test_a_client_that_takes_no_data_loses_its_connection_after_the_write_timeout(
    impatient_platform: Platform,
) -> None:
    platform = impatient_platform
    user, thread = unique("stall"), unique("t")
    reader, stalled, events = await long_run_beside_a_stalled_socket(platform, user, thread)
    # The run's events fit in the send queue: no slow-consumer close, only the timeout.
    assert len(events) < ROOMY_SEND_QUEUE

    # Bounded wait: the counters reach /metrics within a second of the drop.
    deadline = time.monotonic() + (WRITE_TIMEOUT_S + TIMEOUT_S) * time_scale()
    while True:
        text = await metrics(platform)
        if gauge(text, "squall_target_write_timeouts_total") or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert gauge(text, "squall_target_write_timeouts_total") == 1
    assert gauge(text, "squall_target_sockets_open") == 1  # the reader's
    assert gauge(text, "squall_target_slow_consumer_closes_total") == 0  # shown from the start
    log = platform.process.log_path.read_text(errors="replace")
    assert "took no data for 1 s (SQUALL_SOCKET_WRITE_TIMEOUT_S): connection dropped" in log
    # A drop of the platform's, with no close frame: 1006, not a close of the client's.
    assert await counter_reaches(platform, 'squall_target_sockets_closed_total{code="1006"}', 1)
    # A reset: the platform's kernel keeps no closing connection with the unsent MBs
    # (FIN_WAIT1 behind a client that takes no data).
    client_port = stalled.local_address[1]
    assert not [
        c
        for c in psutil.net_connections(kind="tcp")
        if c.laddr and c.laddr.port == platform.port and c.raddr and c.raddr.port == client_port
    ]

    # The stalled client reads what its kernel kept, then finds the connection reset:
    # no close frame, nothing after a gap.
    read, closed = await read_until_closed(stalled)
    assert closed.rcvd is None
    seqs = [f["seq"] for f in read if "seq" in f]
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) < len(events)
    # The reader was never held up, and still works.
    await reader.send(json.dumps({"type": "resume", "thread_id": thread, "after_seq": 0}))
    replay = await recv_until(reader, lambda f: f.get("type") == "resume_done", 4 * TIMEOUT_S)
    assert replay[-1]["last_seq"] == len(events)
    await reader.close()


@pytest.fixture(scope="module")
def busy_platform(platform_factory: Callable[..., Platform]) -> Platform:
    """The same small send queue, and runs of some thousands of small events."""
    return platform_factory(
        workers=1,
        SQUALL_MODEL_ANSWER_TOKENS="3000",
        SQUALL_STREAM_CHUNK_TOKENS="1",
        SQUALL_MODEL_TOKENS_PER_SECOND="100000000",
        SQUALL_SOCKET_SEND_QUEUE=str(SEND_QUEUE),
    )


async def test_replays_of_several_threads_at_once_never_close_a_reading_socket(
    busy_platform: Platform,
) -> None:
    # A resync after a pub/sub reconnect starts a fill for every thread a socket has seen,
    # all at once; so do resumes sent together. Their pages share one send queue.
    platform = busy_platform
    user, threads = unique("fills"), [unique("t") for _ in range(3)]
    writer, _ = await open_socket(platform, user)
    for thread in threads:
        await writer.send(user_message(thread))
    done: set[str] = set()

    def all_completed(frame: dict[str, Any]) -> bool:
        if frame.get("type") == "agent_completed":
            done.add(frame["thread_id"])
        return len(done) == len(threads)

    await recv_until(writer, all_completed, within=4 * TIMEOUT_S)
    await writer.close()

    reader, _ = await open_socket(platform, user)
    for thread in threads:
        await reader.send(json.dumps({"type": "resume", "thread_id": thread, "after_seq": 0}))
    finished: set[str] = set()

    def all_resumed(frame: dict[str, Any]) -> bool:
        if frame.get("type") == "resume_done":
            finished.add(frame["thread_id"])
        return len(finished) == len(threads)

    frames = await recv_until(reader, all_resumed, within=4 * TIMEOUT_S)
    for thread in threads:
        seqs = [f["seq"] for f in frames if f.get("thread_id") == thread and "seq" in f]
        assert seqs == list(range(1, len(seqs) + 1)), thread
        assert len(seqs) > 3000
    await reader.close()
