"""Run N worker processes of the app on one listening socket.

The parent binds the socket once and starts each worker with ``spawn``; every
worker runs a uvicorn server on the shared socket and reads its settings from
the environment the parent exported. The parent only supervises: it prints the
ready line once every worker serves, starts a new worker in place of one that
dies after that (within :class:`RestartBudget`), and on SIGTERM/SIGINT it asks
each worker to stop and waits for them. Workers die with the parent
(``PR_SET_PDEATHSIG``), so even a parent killed outright leaves no orphan.

A process told to die with the one that started it (the supervisor, when squall starts
it; each worker) stops at once, without a graceful shutdown, once that process is gone
(:class:`ParentWatch`): the servers it used may have died with its starter (squall's
embedded ones do), and a graceful shutdown would wait for them
(``SQUALL_DATABASE_OUTAGE_WAIT_S``), holding its port, for nobody.

Each worker closes its sockets with 1001 *before* uvicorn's own shutdown, which
would otherwise close them with 1012.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import multiprocessing
import os
import signal
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

from squall.fdlimit import few_open_files_note, raise_open_files
from squall.parent_death import die_with_parent, parent_death_signal
from squall.target.auth import Authenticator
from squall.target.edge import CLOSE_WAIT_S, drain_current
from squall.target.preflight import ServerUnreachable, check_servers
from squall.target.protocol import (
    PLATFORM_GAVE_UP,
    READY_LINE,
    WORKER_DIED_LINE,
    WORKER_REPLACED,
)
from squall.target.settings import Settings, SettingsError
from squall.target.ws import CLOSED_BY_SERVER, WRITE_TIMEOUT_REASON

if TYPE_CHECKING:
    import h11  # uvicorn's HTTP parser, only named in a signature here
    from uvicorn._types import ASGIReceiveEvent, ASGISendEvent

APP = "squall.target.app:create_app"
log = logging.getLogger("squall.target.server")


class EdgeConfig(uvicorn.Config):
    """uvicorn's configuration plus what :class:`SocketProtocol` reads of the settings."""

    def __init__(self, app: str, *, write_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        #: ``SQUALL_SOCKET_WRITE_TIMEOUT_S``: 0 turns the write timeout off.
        self.write_timeout_s = write_timeout_s


class HttpProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol (h11), passing on what came after an upgrade request.

    uvicorn hands the WebSocket protocol the request head alone: frames a client sent in
    the same packet as its upgrade request (a pipelined first message) were dropped
    without a word.
    """

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        super().handle_websocket_upgrade(event)
        data, _ = self.conn.trailing_data
        if data:
            self.transport.get_protocol().data_received(bytes(data))  # type: ignore[attr-defined]


class SocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, trimmed for many idle sockets.

    Measured on one worker holding 2,000 idle sockets (tracemalloc and RSS), uvicorn
    kept per socket an ``asyncio.Queue`` for the app's receive (three deques,
    ~3.5 KB), the ``writable`` event (~0.8 KB) and the handshake, long after the socket
    opened (request and response headers, the scope's header list, ~4 KB). The queue
    and the event are replaced by :class:`Inbox` and :class:`Gate`, which hold nothing
    while nothing waits, and the handshake is dropped once the app accepted (the
    platform reads its token before accepting): 24.2 KB → 13.3 KB per idle socket,
    together with ``proxy_headers=False``.

    A write timeout bounds what a client that stops reading costs: once the transport's
    buffer is full (the kernel's buffers for the connection are full before it), the
    connection is dropped (reset, no close frame: the client takes nothing, a close
    frame included) unless the client takes data within ``write_timeout_s``. The timer
    exists only while the transport is paused.
    """

    #: The pending write timeout, set only while the transport is paused for writing
    #: (a class default, so an idle socket holds no attribute for it).
    _write_timer: asyncio.TimerHandle | None = None
    #: What the client sent after its upgrade request and before the app accepted (a
    #: pipelined first frame), held until it does (a class default, as above).
    _early: bytes | None = None

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.queue = Inbox()  # type: ignore[assignment]  # the subset uvicorn uses
        self.writable = Gate()  # type: ignore[assignment]  # the subset uvicorn uses

    async def send(self, message: ASGISendEvent) -> None:
        opening = not self.handshake_complete
        await super().send(message)
        if opening and self.handshake_complete and message["type"] == "websocket.accept":
            # websockets' parser keeps the request object for good: empty its headers.
            self.request.headers.clear()
            self.response.headers.clear()
            self.scope["headers"] = ()
        elif self._early is not None and message["type"] == "websocket.send":
            # The app's first frame (the platform's hello) is out: the frames held are read
            # now, as if they had just come.
            early, self._early = self._early, None
            self.transport.resume_reading()
            self.data_received(early)

    def data_received(self, data: bytes) -> None:
        if (self.handshake_initiated and not self.handshake_complete) or self._early is not None:
            # Parsed before the app accepted, a frame that closes the socket (bad UTF-8, a
            # bad opcode, a close) broke the handshake without its 101 (and a traceback),
            # after a message in the same packet was stored and billed: held until the app,
            # having accepted, sends its first frame (dropped if it refuses), reading paused
            # meanwhile.
            self._early = (self._early or b"") + data
            self.transport.pause_reading()
            return
        super().data_received(data)
        if not self.handshake_initiated and self.conn.handshake_exc is not None:
            self._refuse_handshake()

    def _refuse_handshake(self) -> None:
        """Send websockets' answer to an upgrade request it could not parse (a header line
        past 8 KB, more than 128 headers, a control character) and close. uvicorn writes
        what the parser queued only when an event comes, and none does: the connection
        stayed open, silent, for good."""
        if self.transport.is_closing():
            return
        log.info(
            "upgrade request from %s refused: %s",
            f"{self.client[0]}:{self.client[1]}" if self.client else "a client",
            self.conn.handshake_exc,
        )
        answer = b"".join(self.conn.data_to_send())
        if answer:
            self.transport.write(answer)
        self.transport.close()

    def handle_parser_exception(self) -> None:
        """uvicorn's (a frame the connection cannot take: it sends its close and reports
        the disconnect with that code), telling the app the close was the server's."""
        self.scope[CLOSED_BY_SERVER] = True  # type: ignore[literal-required]
        super().handle_parser_exception()

    def pause_writing(self) -> None:
        super().pause_writing()
        timeout = getattr(self.config, "write_timeout_s", 0.0)
        if timeout > 0 and self._write_timer is None:
            self._write_timer = self.loop.call_later(timeout, self._write_timed_out, timeout)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._cancel_write_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_write_timer()
        super().connection_lost(exc)

    def _cancel_write_timer(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            del self._write_timer  # back to the class default

    def _write_timed_out(self, timeout: float) -> None:
        del self._write_timer
        if self.disconnected:
            return
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
        log.warning(
            "socket of %s took no data for %g s (SQUALL_SOCKET_WRITE_TIMEOUT_S): "
            "connection dropped, %d bytes unsent",
            client,
            timeout,
            self.transport.get_write_buffer_size(),
        )
        # The app learns why before connection_lost reports the drop itself.
        self.scope[CLOSED_BY_SERVER] = True  # type: ignore[literal-required]
        self.queue.put_nowait(
            {"type": "websocket.disconnect", "code": 1006, "reason": WRITE_TIMEOUT_REASON}
        )
        # A reset (linger 0), not a close: the kernel would otherwise keep the unsent MBs
        # for a client that takes none, until TCP itself gives up on it.
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
        self.transport.abort()


#: ``SO_LINGER`` on, 0 s: closing the socket resets the connection and drops what is unsent.
_RESET = struct.pack("ii", 1, 0)


class Inbox:
    """What uvicorn uses of ``asyncio.Queue`` (``put_nowait``, ``get``, ``empty``), one reader.

    Unbounded like the queue it replaces: uvicorn pauses reading from the socket
    while a received message waits, so only a few control messages can pile up.
    """

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[ASGIReceiveEvent] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: ASGIReceiveEvent) -> None:
        if self._items is None:
            self._items = []
        self._items.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    async def get(self) -> ASGIReceiveEvent:
        while not self._items:
            if self._waiter is not None:
                raise RuntimeError(
                    "two tasks receive from one WebSocket; only one may await receive() at a time"
                )
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._items.pop(0)
        if not self._items:
            self._items = None
        return item


class Gate:
    """What uvicorn uses of ``asyncio.Event`` (``wait``, ``set``, ``clear``) for write flow control.

    Open while the transport takes writes; a future exists only while a send
    waits for the transport to drain.
    """

    __slots__ = ("_open", "_waiters")

    def __init__(self) -> None:
        self._open = True
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._open

    def set(self) -> None:
        self._open = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._open = False

    async def wait(self) -> bool:
        if self._open:
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        await waiter
        return True


#: What uvicorn logs, with a traceback, when a client's text frame is not valid UTF-8.
_NOT_UTF8 = "Invalid UTF-8 sequence received from client."


class ClientMistakeAsWarning(logging.Filter):
    """uvicorn logs a text frame that is not valid UTF-8 (the socket is closed with 1007,
    as RFC 6455 requires) as an ERROR with a traceback, although it is the client's
    mistake, not the platform's: this makes it one WARNING line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == _NOT_UTF8:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg, record.args = (
                "a client sent a text frame that is not valid UTF-8: closed with 1007",
                None,
            )
            record.exc_info, record.exc_text = None, None
        return True


_CLIENT_MISTAKE = ClientMistakeAsWarning()


class Readiness:
    """Which workers serve: each announces its pid (:func:`announce`) on one pipe once it
    listens, and the parent reads them here.

    A pipe rather than a file per worker: nothing is on disk, so nothing outlives the
    processes, a parent killed outright (SIGKILL) included; the kernel frees the pipe with
    the last process holding it. A pid is one write(2) far below ``PIPE_BUF``, which a
    pipe takes whole, so workers announcing at once never interleave.
    """

    def __init__(self, context: BaseContext) -> None:
        self._reader, self.writer = context.Pipe(duplex=False)
        self._served: set[int] = set()

    def _read(self) -> None:
        while self._reader.poll(0):
            self._served.add(int(self._reader.recv_bytes()))

    def serves(self, pid: int | None) -> bool:
        """Whether worker ``pid`` announced that it serves."""
        self._read()
        return pid in self._served

    def count(self) -> int:
        """How many workers announced they serve, dead ones included."""
        self._read()
        return len(self._served)

    def close(self) -> None:
        self._reader.close()
        self.writer.close()


def announce(writer: Connection, pid: int) -> None:
    """Tell :class:`Readiness` (at the other end of ``writer``) that worker ``pid`` serves.

    With the parent gone (killed outright) nobody reads: the pipe is broken, and the
    worker, which dies with its parent, has nobody to tell.
    """
    with contextlib.suppress(BrokenPipeError):
        writer.send_bytes(str(pid).encode())


class ParentWatch:
    """Whether the process that started this one (``parent``, by default this process's
    parent now) is gone, for a process asked to die with it (a parent-death signal set):
    its death signal is then no request for a graceful stop, as a SIGTERM from a live
    parent is.

    The kernel gives an orphan its new parent (init, or a subreaper) before it sends the
    death signal, so the signal's handler already sees the change. A process run without a
    death signal (``squall target serve`` from a shell, under ``nohup``) is never watched:
    its parent may go and it still serves, and stops gracefully.
    """

    def __init__(self, parent: int | None = None) -> None:
        self.parent = os.getppid() if parent is None else parent
        self.watched = parent_death_signal() != 0

    def gone(self) -> bool:
        return self.watched and os.getppid() != self.parent


class EdgeServer(uvicorn.Server):
    """uvicorn's server, announcing readiness on a pipe and closing sockets with 1001 first;
    told to stop once its supervisor is gone (``orphaned``), it exits at once."""

    def __init__(
        self,
        config: uvicorn.Config,
        ready: Connection | None = None,
        orphaned: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__(config)
        self._ready = ready
        self._orphaned = orphaned
        logging.getLogger("uvicorn.error").addFilter(_CLIENT_MISTAKE)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._orphaned is not None and self._orphaned():
            # The supervisor is gone, and with it whoever started the platform: nobody
            # waits for a graceful close, and the servers may be gone with them.
            os._exit(128 + sig)
        super().handle_exit(sig, frame)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self._ready is not None:
            await asyncio.to_thread(announce, self._ready, os.getpid())

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await drain_current()
        await super().shutdown(sockets)


#: The platform's own log lines (warnings and errors): when, how grave and which worker,
#: since the workers' lines interleave in one log (``platform.log`` under ``squall run``).
LOG_FORMAT = "%(asctime)s %(levelname)s worker %(process)d %(name)s: %(message)s"


def configure_platform_logging() -> None:
    """Write the ``squall`` loggers' warnings and errors to standard error as
    :data:`LOG_FORMAT` (unconfigured, Python printed the bare message)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    platform_log = logging.getLogger("squall")
    platform_log.addHandler(handler)
    platform_log.setLevel(logging.WARNING)


def _worker(
    config: uvicorn.Config, sock: socket.socket, ready: Connection, supervisor: int
) -> None:
    die_with_parent(signal.SIGTERM, supervisor)
    config.configure_logging()
    configure_platform_logging()
    EdgeServer(config, ready, ParentWatch(supervisor).gone).run(sockets=[sock])


def build_config(settings: Settings, host: str, port: int, workers: int) -> EdgeConfig:
    return EdgeConfig(
        APP,
        write_timeout_s=settings.socket_write_timeout_s,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        lifespan="on",
        # The sansio implementation (trimmed, see SocketProtocol): the lightest per
        # socket, and it reports websocket.disconnect as soon as the app sends its
        # close (ws.py relies on it).
        ws=SocketProtocol,
        http=HttpProtocol,
        # permessage-deflate only when asked for: a socket whose client negotiates it
        # holds two zlib streams, ~37 KB measured, three times an idle socket's whole
        # cost; frames are small JSON.
        ws_per_message_deflate=settings.ws_compression == "deflate",
        # Nothing reads the client address, so X-Forwarded-* need no rewriting, and
        # every idle socket's task saves the middleware's frame.
        proxy_headers=False,
        # Frames above max_frame_bytes get an error frame, so the transport must let
        # them through; only beyond this hard cap does the socket close with 1009.
        ws_max_size=max(16 * 1024 * 1024, 4 * settings.max_frame_bytes),
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace_s + CLOSE_WAIT_S) + 1,
    )


class CannotListen(OSError):
    """The platform's port cannot be bound; the message names the address and the fix."""


#: Where to point ``--host`` instead of an address this machine does not have.
_HOST_FIX = (
    "pass an address of this machine to --host, such as 127.0.0.1 (reachable from this "
    "machine only) or 0.0.0.0 (every interface)"
)


def listen_problem(host: str, port: int, exc: OSError) -> str:
    """Why ``host:port`` cannot be bound (``exc``), with the fix: a host that is no address
    of this machine (or no address at all) is named as such; a port another process holds,
    or a privileged one, as that."""
    where = f"cannot listen on {host}:{port}: {exc.strerror}"
    if isinstance(exc, socket.gaierror):
        return f"{where}: {host!r} is not a name this machine can resolve; {_HOST_FIX}"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{where}: {host} is not an address of this machine; {_HOST_FIX}"
    if exc.errno == errno.EACCES:
        return (
            f"{where}: this user may not listen on port {port} (a port below 1024 needs "
            "privileges); choose another --port (0 picks a free one)"
        )
    return (
        f"{where}; choose another --port (0 picks a free one) or --host, or stop the "
        "process that holds it"
    )


def listen_socket(host: str, port: int) -> socket.socket:
    """The socket every worker accepts on, bound as uvicorn binds one (``SO_REUSEADDR``,
    inheritable), or :class:`CannotListen` with the address and the fix."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise CannotListen(exc.errno, listen_problem(host, port, exc)) from exc
    sock.set_inheritable(True)
    return sock


class RestartBudget:
    """How many dead workers the supervisor replaces: at most ``limit`` within any
    ``window_s`` seconds. A worker that keeps dying (a setting it cannot use, a service
    that refuses it) would otherwise be restarted for ever; past the budget the platform
    stops as it does when a worker dies before serving. Pure: the caller passes the time.
    """

    def __init__(self, limit: int = 5, window_s: float = 60.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._times: deque[float] = deque()

    def take(self, now: float) -> bool:
        """Whether one more restart at ``now`` (monotonic seconds) is within the budget."""
        while self._times and now - self._times[0] >= self.window_s:
            self._times.popleft()
        if len(self._times) >= self.limit:
            return False
        self._times.append(now)
        return True


def restart_delay(unserved: int) -> float:
    """Seconds before replacing a worker, given how many replacements in a row died before
    serving: none at once, then 0.5, 1, 2, 4, 8 s, so a service that refuses new workers
    for a while (Redis down, say) is waited for instead of using up the budget at once."""
    return 0.0 if unserved <= 0 else min(8.0, 0.5 * 2 ** (unserved - 1))


def exit_description(exitcode: int | None) -> str:
    """How a worker ended, from ``Process.exitcode`` ("was killed by SIGKILL"). A worker
    asked to stop (SIGTERM, SIGINT) shuts down gracefully and then ends by that signal
    (uvicorn raises it again once it is done): "stopped on SIGTERM"."""
    if exitcode is not None and exitcode < 0:
        try:
            sig = signal.Signals(-exitcode)
        except ValueError:
            return f"was killed by signal {-exitcode}"
        if sig in (signal.SIGTERM, signal.SIGINT):
            return f"stopped on {sig.name}"
        return f"was killed by {sig.name}"
    return f"exited with code {exitcode}"


class _Slots:
    """The worker processes of one ``serve``, one per slot: which serve, which died, and
    their replacements (started at once, or after :func:`restart_delay` when the last one
    died before serving, within the :class:`RestartBudget`)."""

    def __init__(
        self,
        start: Callable[[int], multiprocessing.process.BaseProcess],
        count: int,
        ready: Readiness,
        budget: RestartBudget,
    ) -> None:
        self._start = start
        self._count = count
        self._ready = ready
        self._budget = budget
        self.processes: list[multiprocessing.process.BaseProcess] = []
        self._unserved = [0] * count  # replacements in a row that died before serving
        self._due: dict[int, float] = {}  # slot → when its replacement starts (monotonic)
        self._replacements: set[int] = set()  # pids of new workers not serving yet

    def start(self) -> None:
        """Start every slot's first worker."""
        for i in range(self._count):
            self.processes.append(self._start(i))

    def tick(self, now: float, announced: bool) -> str | None:
        """One look at the workers (logging what changed); why to stop, or None."""
        for pid in [pid for pid in self._replacements if self._ready.serves(pid)]:
            self._replacements.discard(pid)
            print(f"squall target: new worker pid {pid} serves", file=sys.stderr, flush=True)
        for i in [i for i, at in self._due.items() if at <= now]:
            del self._due[i]
            self.processes[i] = self._start(i)
            self._replacements.add(self.processes[i].pid or 0)
        dead = [
            (i, p) for i, p in enumerate(self.processes) if i not in self._due and not p.is_alive()
        ]
        if not dead:
            return None
        i, process = dead[0]
        how = f"{WORKER_DIED_LINE}{process.pid} {exit_description(process.exitcode)}"
        if not announced:
            return f"{how} before every worker served{PLATFORM_GAVE_UP}"
        if not self._budget.take(now):
            return (
                f"{how}{PLATFORM_GAVE_UP}: more than {self._budget.limit} workers died within "
                f"{self._budget.window_s:g} s (SQUALL_WORKER_RESTARTS, "
                "SQUALL_WORKER_RESTART_WINDOW_S), see the workers' errors above"
            )
        self._unserved[i] = 0 if self._ready.serves(process.pid) else self._unserved[i] + 1
        delay = restart_delay(self._unserved[i])
        self._replacements.discard(process.pid or 0)
        later = f" in {delay:g} s (the last one died before serving)" if delay else ""
        print(f"{how}{WORKER_REPLACED}{later}", file=sys.stderr, flush=True)
        self._due[i] = now + delay
        return None


def stop_workers(
    processes: list[multiprocessing.process.BaseProcess],
    timeout: float,
    starter_gone: Callable[[], bool],
) -> None:
    """Ask each live worker to stop (SIGTERM) and wait up to ``timeout`` for them all,
    then kill those left. Once ``starter_gone()`` (now, or while it waits), the workers
    are killed at once instead: nobody waits for their graceful shutdown."""
    abandoned = starter_gone()
    if abandoned:
        _abandon(processes)
    else:
        for process in processes:
            if process.is_alive() and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while (alive := [p for p in processes if p.is_alive()]) and time.monotonic() < deadline:
        if not abandoned and starter_gone():
            abandoned = True
            _abandon(processes)
        multiprocessing.connection.wait([p.sentinel for p in alive], timeout=0.1)
    for process in processes:
        if process.is_alive():
            process.kill()
        process.join(5)


def _abandon(processes: list[multiprocessing.process.BaseProcess]) -> None:
    """Kill the workers of a supervisor whose starter is gone."""
    print(
        "squall target: the process that started it is gone; stopping the workers at once",
        file=sys.stderr,
        flush=True,
    )
    for process in processes:
        if process.is_alive():
            process.kill()


def serve(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    workers: int = 2,
    on_ready: Callable[[str], None] = print,
) -> int:
    """Serve until SIGTERM/SIGINT; return 0 after a clean stop, 1 if a worker died before
    every worker served or more died than the :class:`RestartBudget` of ``settings``
    allows. A worker that dies once all serve is replaced by a new one.
    """
    if workers < 1:
        raise ValueError(f"workers={workers}; expected at least 1")
    starter = ParentWatch()  # first: the process that started this one
    # Every client socket is a file; the workers inherit it.
    few_files = few_open_files_note(raise_open_files()[0])
    if few_files is not None:
        log.warning("squall target: %s", few_files.removeprefix("! "))
    sock = listen_socket(host, port)  # first: a held port changes nothing here
    try:
        Authenticator(settings)  # reads and checks the key file once, before any worker
        check_servers(settings)
    except (SettingsError, ServerUnreachable):
        sock.close()
        raise
    os.environ.update(settings.to_env())
    config = build_config(settings, host, port, workers)
    bound_port = sock.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host  # an IPv6 address in a URL
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    context = multiprocessing.get_context("spawn")
    ready = Readiness(context)

    def start_worker(i: int) -> multiprocessing.process.BaseProcess:
        process = context.Process(
            target=_worker,
            args=(config, sock, ready.writer, os.getpid()),
            name=f"squall-target-worker-{i}",
        )
        process.start()
        return process

    exit_code = 0
    announced = False
    budget = RestartBudget(settings.worker_restarts, settings.worker_restart_window_s)
    slots = _Slots(start_worker, workers, ready, budget)
    try:
        slots.start()
        while not stop.wait(0.1) and not starter.gone():
            if not announced and ready.count() >= workers:
                announced = True
                on_ready(
                    f"{READY_LINE}ws://{shown_host}:{bound_port}/v1/ws "
                    f"({workers} worker{'s' if workers != 1 else ''})"
                )
            stopping = slots.tick(time.monotonic(), announced)
            if stopping is not None:
                print(stopping, file=sys.stderr, flush=True)
                exit_code = 1
                break
    finally:
        stop_workers(slots.processes, settings.shutdown_grace_s + CLOSE_WAIT_S + 5, starter.gone)
        sock.close()
        ready.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return exit_code
