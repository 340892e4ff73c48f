"""The platform's WebSocket protocol (``server.SocketProtocol``) and socket route, on real sockets.

``SocketProtocol`` drops the handshake once the app accepted and replaces
uvicorn's per-socket queue and event with lighter ones; these tests drive it in
an in-process uvicorn on port 0 with a small echo app, then check the platform's
own route: other paths are refused and compression is never negotiated.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import uvicorn
from edge_client import Platform, counter_reaches, open_socket, recv
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.frames import Frame, Opcode

from squall.target.server import Gate, Inbox, SocketProtocol

pytestmark = pytest.mark.integration

WAIT_S = 10.0
FLOOD_FRAMES = 512
FLOOD_FRAME_BYTES = 64 * 1024


class EchoApp:
    """Records the Authorization header, accepts, answers each text in upper case.

    ``flood`` makes it send ``FLOOD_FRAMES`` numbered frames of 64 KB at once.
    """

    def __init__(self) -> None:
        self.authorization: bytes | None = None
        self.finished = asyncio.Event()
        #: Set by :class:`WatchedProtocol` when the transport asks sends to wait.
        self.paused = asyncio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            self.authorization = dict(scope["headers"]).get(b"authorization")
            assert (await receive())["type"] == "websocket.connect"
            await send({"type": "websocket.accept"})
            while (message := await receive())["type"] != "websocket.disconnect":
                if message["text"] == "flood":
                    for index in range(FLOOD_FRAMES):
                        text = f"{index:08d}".ljust(FLOOD_FRAME_BYTES, ".")
                        await send({"type": "websocket.send", "text": text})
                else:
                    await send({"type": "websocket.send", "text": message["text"].upper()})
        finally:
            self.finished.set()


class WatchedProtocol(SocketProtocol):
    """Tells the app when uvicorn pauses its writes (the transport's buffer is full)."""

    def pause_writing(self) -> None:
        super().pause_writing()
        assert isinstance(self.app, EchoApp)
        self.app.paused.set()


class Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


@contextlib.asynccontextmanager
async def serving(app: EchoApp) -> AsyncIterator[tuple[uvicorn.Server, str]]:
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        ws=WatchedProtocol,
        ws_per_message_deflate=False,
        proxy_headers=False,
        lifespan="off",
        log_config=None,
    )
    server = Server(config)
    sock = config.bind_socket()
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(WAIT_S):
            await server.ready.wait()
        yield server, f"ws://127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, WAIT_S)
        sock.close()


def the_protocol(server: uvicorn.Server) -> SocketProtocol:
    [protocol] = [p for p in server.server_state.connections if isinstance(p, SocketProtocol)]
    return protocol


async def test_an_open_socket_keeps_none_of_its_handshake() -> None:
    app = EchoApp()
    async with serving(app) as (server, url):
        async with connect(url, additional_headers={"Authorization": "Bearer abc"}) as ws:
            await ws.send("hi")
            assert await asyncio.wait_for(ws.recv(), WAIT_S) == "HI"
            protocol = the_protocol(server)
            assert app.authorization == b"Bearer abc"  # read before accepting
            assert list(protocol.request.headers.raw_items()) == []
            assert list(protocol.response.headers.raw_items()) == []
            assert protocol.scope["headers"] == ()
            assert isinstance(protocol.queue, Inbox)
            assert isinstance(protocol.writable, Gate)
            assert protocol.queue.empty()
        async with asyncio.timeout(WAIT_S):
            await app.finished.wait()  # the client's close reached the app as a disconnect


async def test_messages_reach_the_app_in_order() -> None:
    app = EchoApp()
    async with serving(app) as (_, url), connect(url) as ws:
        words = [f"word-{i}" for i in range(200)]
        for word in words:
            await ws.send(word)
        async with asyncio.timeout(WAIT_S):
            echoes = [await ws.recv() for _ in words]
    assert echoes == [w.upper() for w in words]


async def test_sends_wait_while_the_client_does_not_read() -> None:
    app = EchoApp()
    async with serving(app) as (server, url), connect(url, max_size=None, max_queue=4) as ws:
        await ws.send("flood")
        protocol = the_protocol(server)
        async with asyncio.timeout(WAIT_S):
            await app.paused.wait()  # the client reads nothing: the buffers fill up
        assert not protocol.writable.is_set()
        async with asyncio.timeout(WAIT_S * 3):
            received = [await ws.recv() for _ in range(FLOOD_FRAMES)]
        assert [int(str(text)[:8]) for text in received] == list(range(FLOOD_FRAMES))
        assert protocol.writable.is_set()


# --- the platform's socket route ---------------------------------------------------------


@pytest.fixture(scope="module")
def platform(platform_factory: Callable[..., Platform]) -> Platform:
    return platform_factory(workers=1)


async def test_sockets_on_other_paths_are_refused(platform: Platform) -> None:
    url = platform.ws_url.replace("/v1/ws", "/v1/other")
    with pytest.raises(InvalidStatus) as refused:
        await connect(url, additional_headers=platform.headers("stray"))
    assert refused.value.response.status_code == 403


async def test_compression_is_offered_but_never_negotiated(platform: Platform) -> None:
    ws, hello = await open_socket(platform, "plain")  # the client offers permessage-deflate
    try:
        assert ws.response is not None
        assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
        await ws.send(json.dumps({"type": "ping", "id": "p1"}))
        pong = await recv(ws)
        assert (pong["type"], pong["id"]) == ("pong", "p1")
        assert hello["type"] == "hello"
    finally:
        await ws.close()


@pytest.fixture(scope="module")
def compressing(platform_factory: Callable[..., Platform]) -> Platform:
    return platform_factory(workers=1, SQUALL_WS_COMPRESSION="deflate")


async def test_compression_is_negotiated_when_the_platform_is_asked_to(
    compressing: Platform,
) -> None:
    ws, hello = await open_socket(compressing, "zipped")
    try:
        assert ws.response is not None
        assert "permessage-deflate" in (ws.response.headers.get("Sec-WebSocket-Extensions") or "")
        await ws.send(json.dumps({"type": "ping", "id": "p2"}))
        pong = await recv(ws)
        assert (pong["type"], pong["id"]) == ("pong", "p2")
        assert hello["type"] == "hello"
    finally:
        await ws.close()


@pytest.mark.parametrize(
    "headers",
    [
        [("X-Pad", "p" * 9000)],  # a header line past websockets' 8 KB
        [(f"X-H{n}", "v") for n in range(130)],  # more than 128 headers
    ],
    ids=["long-header", "many-headers"],
)
async def test_an_upgrade_request_websockets_cannot_parse_is_answered_and_closed(
    headers: list[tuple[str, str]],
) -> None:
    # uvicorn's HTTP parser takes these; websockets' refuses them. The connection used to
    # stay open without a byte sent.
    async with serving(EchoApp()) as (_, url):
        port = int(url.rsplit(":", 1)[1].strip("/"))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        lines = [
            "GET / HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version: 13",
            *(f"{name}: {value}" for name, value in headers),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        async with asyncio.timeout(WAIT_S):
            answer = await reader.read()  # to EOF: the server closes
        writer.close()
    assert answer.startswith(b"HTTP/1.1 431"), answer[:80]


def upgrade_request(platform: Platform, user: str) -> bytes:
    """The bytes of an authenticated upgrade request to the platform's socket route."""
    head = [
        "GET /v1/ws HTTP/1.1",
        f"Host: 127.0.0.1:{platform.port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in platform.headers(user).items()),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode()


async def test_a_frame_sent_with_the_upgrade_request_is_not_lost(platform: Platform) -> None:
    # One write: the upgrade request and a masked ping right behind it, as a client that
    # pipelines its first message sends them.
    reader, writer = await asyncio.open_connection("127.0.0.1", platform.port)
    ping = Frame(Opcode.TEXT, b'{"type":"ping","id":"early"}').serialize(mask=True, extensions=[])
    writer.write(upgrade_request(platform, "pipelined") + ping)
    await writer.drain()
    received = b""
    try:
        async with asyncio.timeout(WAIT_S):
            while b'"early"' not in received:
                chunk = await reader.read(65536)
                assert chunk, f"closed before the pong: {received[:300]!r}"
                received += chunk
    finally:
        writer.close()
    assert received.startswith(b"HTTP/1.1 101")
    assert received.index(b'"hello"') < received.index(b'"pong"') < received.index(b'"early"')


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (Frame(Opcode.TEXT, b"\xff\xff"), 1007),
        (Frame(Opcode.CLOSE, (1000).to_bytes(2, "big")), 1000),
    ],
    ids=["not-utf8", "close"],
)
async def test_a_closing_frame_sent_with_the_upgrade_request_comes_after_the_101(
    platform: Platform, frame: Frame, code: int
) -> None:
    # Parsed before the app had accepted, it broke the handshake: no 101, a traceback in
    # the log, and a message pipelined before it stored and billed unbeknown to the client.
    reader, writer = await asyncio.open_connection("127.0.0.1", platform.port)
    writer.write(
        upgrade_request(platform, f"early-{code}") + frame.serialize(mask=True, extensions=[])
    )
    await writer.drain()
    try:
        async with asyncio.timeout(WAIT_S):
            received = await reader.read()  # to EOF: the server closes
    finally:
        writer.close()
    assert received.startswith(b"HTTP/1.1 101")
    assert b'"hello"' in received
    close = Frame(Opcode.CLOSE, code.to_bytes(2, "big")).serialize(mask=False, extensions=[])
    assert received.endswith(close)
    assert "Fatal error on transport" not in platform.process.log_path.read_text(errors="replace")


async def test_a_text_frame_not_utf8_closes_1007_with_one_warning_line(
    platform: Platform,
) -> None:
    # The client's mistake: closed with 1007 as RFC 6455 requires, and logged as one
    # WARNING line (uvicorn logged it as an ERROR with a traceback).
    reader, writer = await asyncio.open_connection("127.0.0.1", platform.port)
    bad = Frame(Opcode.TEXT, b'{"type":"ping","id":"\xff"}').serialize(mask=True, extensions=[])
    writer.write(upgrade_request(platform, "not-utf8"))
    await writer.drain()
    try:
        async with asyncio.timeout(WAIT_S):
            received = await reader.readuntil(b'"hello"')
            writer.write(bad)
            await writer.drain()
            received += await reader.read()  # to EOF: the server closes
    finally:
        writer.close()
    assert received.startswith(b"HTTP/1.1 101")
    close = Frame(Opcode.CLOSE, (1007).to_bytes(2, "big")).serialize(mask=False, extensions=[])
    assert received.endswith(close)
    log_path = platform.process.log_path
    warning = "a client sent a text frame that is not valid UTF-8: closed with 1007"
    for _ in range(int(WAIT_S / 0.05)):  # the worker writes its log line soon after
        if warning in log_path.read_text(errors="replace"):
            break
        await asyncio.sleep(0.05)
    log = log_path.read_text(errors="replace")
    assert warning in log
    assert "Invalid UTF-8 sequence" not in log
    assert "UnicodeDecodeError" not in log
    # Counted by the code the platform closed with, not as a close of the client's.
    assert await counter_reaches(platform, 'squall_target_sockets_closed_total{code="1007"}', 1)
