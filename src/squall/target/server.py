"""Run N worker processes of the app on one listening socket.

The parent binds the socket once and starts each worker with ``spawn``; every
worker runs a uvicorn server on the shared socket and reads its settings from
the environment the parent exported. The parent only supervises: it prints the
ready line once every worker serves, and on SIGTERM/SIGINT it asks each worker
to stop and waits for them. Workers die with the parent (``PR_SET_PDEATHSIG``),
so even a parent killed outright leaves no orphan.

Each worker closes its sockets with 1001 *before* uvicorn's own shutdown, which
would otherwise close them with 1012.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import uvicorn

from squall.target.edge import CLOSE_WAIT_S, drain_current
from squall.target.settings import Settings

APP = "squall.target.app:create_app"
_PR_SET_PDEATHSIG = 1


class EdgeServer(uvicorn.Server):
    """uvicorn's server, announcing readiness by file and closing sockets with 1001 first."""

    def __init__(self, config: uvicorn.Config, ready_dir: str | None = None) -> None:
        super().__init__(config)
        self._ready_dir = ready_dir

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self._ready_dir is not None:
            await asyncio.to_thread(Path(self._ready_dir, str(os.getpid())).touch)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await drain_current()
        await super().shutdown(sockets)


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() == 1:
            os._exit(1)


def _worker(config: uvicorn.Config, sock: socket.socket, ready_dir: str) -> None:
    _die_with_parent()
    config.configure_logging()
    EdgeServer(config, ready_dir).run(sockets=[sock])


def build_config(settings: Settings, host: str, port: int, workers: int) -> uvicorn.Config:
    return uvicorn.Config(
        APP,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        lifespan="on",
        # The sansio implementation: the lightest per socket, and it reports
        # websocket.disconnect as soon as the app sends its close (ws.py relies on it).
        ws="websockets-sansio",
        # Frames above max_frame_bytes get an error frame, so the transport must let
        # them through; only beyond this hard cap does the socket close with 1009.
        ws_max_size=max(16 * 1024 * 1024, 4 * settings.max_frame_bytes),
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace_s + CLOSE_WAIT_S) + 1,
    )


def serve(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    workers: int = 2,
    on_ready: Callable[[str], None] = print,
) -> int:
    """Serve until SIGTERM/SIGINT; return 0 after a clean stop, 1 if a worker died."""
    if workers < 1:
        raise ValueError(f"workers={workers}; expected at least 1")
    os.environ.update(settings.to_env())
    config = build_config(settings, host, port, workers)
    sock = config.bind_socket()
    bound_port = sock.getsockname()[1]
    ready_dir = tempfile.mkdtemp(prefix="squall-target-ready-")
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(
            target=_worker, args=(config, sock, ready_dir), name=f"squall-target-worker-{i}"
        )
        for i in range(workers)
    ]
    exit_code = 0
    announced = False
    try:
        for process in processes:
            process.start()
        while not stop.wait(0.1):
            if not announced and len(os.listdir(ready_dir)) >= workers:
                announced = True
                on_ready(
                    f"squall target: listening on ws://{host}:{bound_port}/v1/ws "
                    f"({workers} worker{'s' if workers != 1 else ''})"
                )
            dead = [p for p in processes if not p.is_alive()]
            if dead:
                print(
                    f"squall target: worker pid {dead[0].pid} exited with code "
                    f"{dead[0].exitcode}; stopping",
                    file=sys.stderr,
                )
                exit_code = 1
                break
    finally:
        for process in processes:
            if process.is_alive() and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
        for process in processes:
            process.join(settings.shutdown_grace_s + CLOSE_WAIT_S + 5)
            if process.is_alive():
                process.kill()
                process.join(5)
        sock.close()
        shutil.rmtree(ready_dir, ignore_errors=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return exit_code
