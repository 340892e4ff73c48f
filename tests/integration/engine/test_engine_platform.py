"""The engine against the reference platform (2 workers) with 2 generator processes."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Iterator

import pytest
import uvloop

from fresh_databases import fresh_database
from squall.engine import ConnectionClosed, MessageTimeout, run_scenario
from squall.engine.client import connect
from squall.metrics.recorder import Recorder
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


async def _resetting_proxy(upstream: str, after_bytes: int) -> asyncio.Server:
    """A loopback proxy to ``upstream`` (host:port) that resets each connection (RST) once
    more than ``after_bytes`` went to the client, as a network fault does."""
    host, port = upstream.rsplit(":", 1)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, int(port))

        async def upstream_bound() -> None:
            while data := await reader.read(65536):
                up_writer.write(data)
                await up_writer.drain()

        async def client_bound() -> None:
            sent = 0
            while data := await up_reader.read(65536):
                writer.write(data)
                await writer.drain()
                sent += len(data)
                if sent > after_bytes:
                    linger = struct.pack("ii", 1, 0)
                    writer.get_extra_info("socket").setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, linger
                    )
                    writer.transport.abort()
                    up_writer.transport.abort()
                    return

        await asyncio.gather(upstream_bound(), client_bound(), return_exceptions=True)

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def _streams_until_reset(url: str, headers: dict[str, str]) -> list[str]:
    """On uvloop, as squall's workers run: each of three sockets sends a message and reads
    its run's events until the proxy resets it; what ended each read."""

    async def one(n: int) -> str:
        socket_ = await connect(url, Recorder(), time.monotonic, headers=headers)
        await socket_.send_json(
            {
                "type": "user_message",
                "thread_id": f"reset-{n}",
                "content": "hi",
                "client_msg_id": "1",
            }
        )
        try:
            while True:
                await socket_.recv_json(timeout=10.0)
        except ConnectionClosed:
            return "closed"
        except MessageTimeout:
            return "timeout"

    async def main() -> list[str]:
        return [await one(n) for n in range(3)]

    return uvloop.run(main())


async def test_a_connection_reset_mid_stream_is_seen_at_once(platform: TargetInfo) -> None:
    # picows' aiofastnet transport on uvloop missed a reset that came while it read: the
    # read waited out its timeout (counted as a timeout, the socket recorded as closed
    # cleanly), and the next connect on the reused descriptor raised RuntimeError.
    proxy = await _resetting_proxy(platform.ws_url.split("/")[2], after_bytes=800)
    port = proxy.sockets[0].getsockname()[1]
    headers = platform.identities("reset")(0).auth_headers()
    try:
        async with proxy:
            url = f"ws://127.0.0.1:{port}/v1/ws"
            ended = await asyncio.to_thread(_streams_until_reset, url, dict(headers))
    finally:
        proxy.close()
    assert ended == ["closed", "closed", "closed"]
