"""The client side of an in-process ASGI WebSocket, for tests that drive the target's
socket code (``squall.target.ws``) without a server or a network.

Importable from every test module (``tests/`` is on ``sys.path``: it holds the root
``conftest.py``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, MutableMapping
from typing import Any

from starlette.websockets import WebSocket


class AsgiSocket:
    """The client side of one in-process ASGI WebSocket: it connects, records what the
    server sends (every message in ``sent``, the text frames parsed in ``frames``) and
    disconnects once ``hang_up`` is set."""

    def __init__(self) -> None:
        self.sent: list[MutableMapping[str, Any]] = []
        self.frames: list[dict[str, Any]] = []
        self.changed = asyncio.Event()
        self.hang_up = asyncio.Event()
        self._connected = False

    async def accept(self) -> WebSocket:
        """The server's side of the socket, accepted (as the endpoint is given it)."""
        scope = {"type": "websocket", "path": "/v1/ws", "headers": [], "query_string": b""}
        websocket = WebSocket(scope, self.receive, self.send)
        await websocket.accept()
        return websocket

    async def receive(self) -> dict[str, Any]:
        if not self._connected:
            self._connected = True
            return {"type": "websocket.connect"}
        await self.hang_up.wait()
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(self, message: MutableMapping[str, Any]) -> None:
        self.sent.append(message)
        if message["type"] == "websocket.send":
            self.frames.append(json.loads(message["text"]))
        self.changed.set()

    async def wait_for(self, done: Callable[[], bool], timeout_s: float) -> None:
        """Wait until ``done()`` holds, checking it after each message the server sends;
        ``TimeoutError`` after ``timeout_s``."""
        async with asyncio.timeout(timeout_s):
            while not done():
                self.changed.clear()
                await self.changed.wait()
