"""A fast WebSocket echo server on picows, pinned to one core: the common target.

Every frame's payload goes straight back from picows' C frame callback, with no
task or queue, so the server costs as little as a Python server can and the
clients, not the server, are what the engine benchmark compares. It runs in its
own process (``python -m bench.echo --port P --cpu 0``) started by
:func:`start_echo` through ``squall.services.spawn``, so it never outlives the
benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from squall.services import ManagedProcess, spawn
from squall.services.embedded import free_port

#: How long the server waits for a connection's upgrade request.
HANDSHAKE_TIMEOUT_S = 60.0


def _serve(port: int) -> None:
    import uvloop
    from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest
    from picows import ws_create_server as create_server

    class Echo(WSListener):
        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            kind = frame.msg_type
            if kind is WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code(), frame.get_close_reason())
                transport.disconnect()
            elif kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
                transport.send(kind, frame.get_payload_as_memoryview())

    def listener(request: WSUpgradeRequest) -> Echo:
        return Echo()

    async def main() -> None:
        # A client counted under valgrind (bench/instructions.py) opens 1,000 sockets some
        # fifty times slower than usual: give each upgrade request a minute, not 5 s.
        server = await create_server(
            listener, "127.0.0.1", port, websocket_handshake_timeout=HANDSHAKE_TIMEOUT_S
        )
        print(f"echo: listening on ws://127.0.0.1:{port}/", flush=True)
        async with server:
            await server.serve_forever()

    uvloop.run(main())


@dataclass
class EchoServer:
    """The running echo server and its working directory (its log), removed when it stops."""

    process: ManagedProcess
    workdir: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.running()

    def log_tail(self, lines: int = 20) -> str:
        return self.process.log_tail(lines)

    def stop(self, timeout: float = 10.0) -> int | None:
        """Stop the server, then remove its working directory; return its exit code."""
        try:
            return self.process.stop(timeout)
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)


def start_echo(cpu: int | None, *, timeout: float = 15.0) -> tuple[EchoServer, str]:
    """Start the echo server (pinned to ``cpu``); return it and its ``ws://`` URL.

    Its working directory (``squall-bench-echo-*``, its log) goes when it stops.
    """
    port = free_port("127.0.0.1")
    workdir = Path(tempfile.mkdtemp(prefix="squall-bench-echo-"))
    argv = [sys.executable, "-m", "bench.echo", "--port", str(port)]
    if cpu is not None:
        argv += ["--cpu", str(cpu)]
    try:
        process = spawn("echo server", argv, log_path=workdir / "echo.log")
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    server = EchoServer(process, workdir)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not server.running():
                raise RuntimeError(f"echo server exited early:\n{server.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return server, f"ws://127.0.0.1:{port}/"
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"echo server did not listen on port {port} within {timeout:g} s")
    except BaseException:
        server.stop()
        raise


def main(argv: list[str] | None = None) -> None:
    from bench.record import pin

    parser = argparse.ArgumentParser(prog="python -m bench.echo")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    args = parser.parse_args(argv)
    pin(args.cpu)
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        _serve(args.port)


if __name__ == "__main__":
    main()
