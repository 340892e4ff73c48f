"""Servers for the engine's tests, on 127.0.0.1, port 0.

:func:`close_ignoring_server` (on the running event loop) accepts every WebSocket upgrade and
never answers anything, a close frame included.

:func:`echo_server`, a JSON echo WebSocket server in its own thread and event loop:

Messages are echoed back unchanged. A message with ``"stall": <seconds>`` is
echoed after that many seconds (the connection's other messages wait behind
it), which is how tests make the target slow down. A message with
``"burst": [text, ...]`` is answered with those texts instead, one message each,
back to back. A connection whose upgrade
request lacks the expected bearer token (when one is configured) is refused
with HTTP 401.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import re
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response


@dataclass
class EchoStats:
    connections: int = 0
    received: int = 0
    subprotocols: list[str | None] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)


@dataclass
class EchoServer:
    url: str
    stats: EchoStats


async def _handler(connection: ServerConnection, stats: EchoStats) -> None:
    stats.connections += 1
    stats.subprotocols.append(connection.subprotocol)
    stats.authorizations.append(connection.request.headers.get("Authorization"))
    async for raw in connection:
        stats.received += 1
        message = json.loads(raw)
        if isinstance(message, dict) and "burst" in message:
            for text in message["burst"]:
                await connection.send(str(text))
            continue
        stall = float(message.get("stall", 0)) if isinstance(message, dict) else 0.0
        if stall:
            await asyncio.sleep(stall)
        await connection.send(raw)


def _pick_subprotocol(connection: ServerConnection, offered: Sequence[str]) -> str | None:
    return "squall.v1" if "squall.v1" in offered else None


@contextmanager
def echo_server(required_token: str | None = None) -> Iterator[EchoServer]:
    """Run the echo server in a background thread for the duration of the block."""
    stats = EchoStats()
    ready = threading.Event()
    holder: dict[str, object] = {}

    def check_auth(connection: ServerConnection, request: Request) -> Response | None:
        if required_token is None:
            return None
        if request.headers.get("Authorization") != f"Bearer {required_token}":
            return Response(401, "Unauthorized", Headers(), b"missing or wrong token\n")
        return None

    async def main() -> None:
        stop = asyncio.Event()
        holder["loop"] = asyncio.get_running_loop()
        holder["stop"] = stop
        async with serve(
            lambda c: _handler(c, stats),
            "127.0.0.1",
            0,
            select_subprotocol=_pick_subprotocol,
            process_request=check_auth,
        ) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            holder["url"] = f"ws://127.0.0.1:{port}/ws"
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("echo server did not start within 10 s")
    try:
        yield EchoServer(str(holder["url"]), stats)
    finally:
        loop = holder["loop"]
        stop = holder["stop"]
        assert isinstance(loop, asyncio.AbstractEventLoop)
        assert isinstance(stop, asyncio.Event)
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


#: RFC 6455's GUID, which the server appends to the client's key to accept an upgrade.
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@dataclass
class CloseIgnoringStats:
    #: Upgrades accepted.
    connections: int = 0
    #: Close frames (opcode 8) received, over all connections.
    close_frames: int = 0


@dataclass
class CloseIgnoringServer:
    url: str
    stats: CloseIgnoringStats


@contextlib.asynccontextmanager
async def close_ignoring_server() -> AsyncIterator[CloseIgnoringServer]:
    """A WebSocket server that accepts every upgrade, then reads what the client sends and
    answers nothing, its close frame included: a client closing politely waits out its
    whole close timeout, then drops the connection."""
    stats = CloseIgnoringStats()
    handlers: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers[task] = writer
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            key = re.search(rb"(?im)^sec-websocket-key:[ \t]*(\S+)", request)
            if key is None:
                return
            accept = base64.b64encode(hashlib.sha1(key.group(1) + _WS_GUID).digest())
            writer.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            await writer.drain()
            stats.connections += 1
            # Every frame, unanswered, until the client drops the connection.
            while True:
                header = await reader.readexactly(2)
                size = header[1] & 0x7F
                if size >= 126:
                    size = int.from_bytes(await reader.readexactly(2 if size == 126 else 8))
                await reader.readexactly((4 if header[1] & 0x80 else 0) + size)
                if header[0] & 0x0F == 0x8:
                    stats.close_frames += 1
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            del handlers[task]

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield CloseIgnoringServer(f"ws://127.0.0.1:{port}/ws", stats)
    finally:
        server.close()
        # Connections a client left open end here, their handlers by themselves.
        for writer in list(handlers.values()):
            writer.close()
        if handlers:
            await asyncio.wait(list(handlers), timeout=10.0)
        await server.wait_closed()
