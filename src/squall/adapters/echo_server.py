"""A tiny JSON-agnostic echo WebSocket service: every text or binary message comes back.

It stands for "some other service" when proving that a scenario runs through
an adapter: no authentication, no acknowledgements, no sequence numbers.
Run it with ``python -m squall.adapters.echo_server --port 8765``; it listens on
127.0.0.1 by default and answers ``GET /healthz`` with 200 so a launcher can
wait for it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Sequence
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response


async def _echo(connection: ServerConnection) -> None:
    with contextlib.suppress(Exception):
        async for message in connection:
            await connection.send(message)


def _health(connection: ServerConnection, request: Request) -> Response | None:
    if request.path == "/healthz":
        return connection.respond(HTTPStatus.OK, "ok\n")
    return None


async def serve_echo(host: str, port: int, stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set."""
    async with serve(_echo, host, port, process_request=_health, max_size=2**22):
        print(f"echo server listening on ws://{host}:{port}/", flush=True)
        await stop.wait()


async def _main(host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve_echo(host, port, stop)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m squall.adapters.echo_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args(argv)
    asyncio.run(_main(args.host, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
