"""The ``/v1/ws`` endpoint: one task per idle socket, a writer only while frames wait.

Everything a socket sends goes through :meth:`Connection.offer`, which is
synchronous: frames are queued in the order they are offered, and a writer
task, started by the first queued frame and ended when the queue drains, sends
them; the endpoint's own task reads. This is what makes ``ack`` precede its run's events (offered
right after ``submit`` returns, with no ``await`` in between) and lets live
events and ``resume`` replays interleave without duplicates or gaps (see
:mod:`squall.target.ordering`).

``hello`` is the first frame of every socket. The hub attaches a socket before
its ``hello`` (so the socket cannot miss an event published after it), and the
hub's reader may dispatch an event in the same step that confirms the
subscription, before the endpoint gets to send ``hello``: such events wait in
the connection until :meth:`Connection.greet` queues ``hello``.

Backpressure: live events cannot wait, so when ``socket_send_queue`` frames are
waiting the client is a slow consumer and the socket closes with 1008. Replays
can wait, so a fill queues a page of at most a quarter of the queue, and only while
the queue is at most half full (:func:`replay_page`). A client that takes no data at
all loses its connection after ``socket_write_timeout_s`` (server.py), whether or not
its queue filled. Events held
back (before ``hello``, or while a ``user_message`` of their thread is being
submitted) are kept in an unbounded list: both phases last one round trip to
Redis or PostgreSQL.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import functools
import logging
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from squall.target import db, protocol
from squall.target.auth import Principal, Unauthorized, find_token
from squall.target.errors import (
    NotFound,
    ShuttingDown,
    TargetError,
    TooManySockets,
    Unavailable,
    unavailable,
)
from squall.target.hub import SubscribeTimeout
from squall.target.ids import ThreadID, UserID, WebSocketID, new_websocket_id
from squall.target.metrics import series
from squall.target.ordering import Sequencer, Step

if TYPE_CHECKING:
    from squall.target.edge import Edge

log = logging.getLogger("squall.target.ws")

#: The ``reason`` of the ``websocket.disconnect`` the server reports when it dropped a
#: connection whose client took no data (``SQUALL_SOCKET_WRITE_TIMEOUT_S``, server.py).
WRITE_TIMEOUT_REASON = "write timeout"
#: Set in a socket's ASGI scope by the server when it closed the connection itself, below
#: the app: a frame it could not take (1002 a protocol error, 1007 invalid UTF-8, 1009 too
#: large) or a write timeout (1006, no close frame). The disconnect's code is then the
#: server's, not the client's (``sockets_closed_total{code}``).
CLOSED_BY_SERVER = "squall.closed_by_server"

#: Events fetched per ``runtime.replay`` call while filling, at most (see :func:`replay_page`).
REPLAY_PAGE = 500
MAX_REASON_BYTES = 120


def replay_page(capacity: int) -> int:
    """Events a fill fetches and queues at once on a socket whose send queue holds
    ``capacity`` frames: at most a quarter of it. A fill queues its next page once the
    queue is at most half full, so the queue stays within three quarters of ``capacity``
    and live events, for which a full queue means a slow consumer (1008), keep room; a
    page as large as the queue would close a socket whose client reads as fast as it can."""
    return max(1, min(REPLAY_PAGE, capacity // 4))


class CloseCode(enum.IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    #: Slow consumer (send queue full) or too many sockets for the user.
    POLICY_VIOLATION = 1008
    #: The platform failed (an error it did not expect): the socket's endpoint raised.
    INTERNAL_ERROR = 1011
    #: A service the platform needs (Redis) could not be reached at admission.
    TRY_AGAIN_LATER = 1013
    UNAUTHORIZED = 4401
    REPLACED = 4409


class State(enum.Enum):
    #: Admitted, ``hello`` not yet queued: live events are held back.
    GREETING = "greeting"
    OPEN = "open"
    CLOSING = "closing"


@dataclass(frozen=True)
class _Close:
    code: CloseCode
    reason: str


class Connection:
    """One accepted socket of one user on this worker (a :class:`~squall.target.hub.Member`).

    Sized for many idle sockets: the endpoint's own task reads; a writer task, the
    outbound deque and the room event exist only while there is something to send
    or a fill waits for room, and are dropped again once the deque drains.
    """

    __slots__ = (
        "_capacity",
        "_deferred",
        "_edge",
        "_queue",
        "_room",
        "_sequencer",
        "_session",
        "_submitting",
        "_tasks",
        "_websocket",
        "_writer",
        "close_code",
        "principal",
        "socket_id",
        "state",
    )

    def __init__(self, websocket: WebSocket, edge: Edge, principal: Principal) -> None:
        self.socket_id: WebSocketID = new_websocket_id()
        self.principal = principal
        self._websocket = websocket
        self._edge = edge
        self._capacity = edge.settings.socket_send_queue
        #: Frames waiting for the writer; ``None`` while nothing waits.
        self._queue: collections.deque[str | _Close] | None = None
        #: The writer task, alive only while ``_queue`` has frames.
        self._writer: asyncio.Task[None] | None = None
        #: Set when the queue is at most half full; created only when a fill waits.
        self._room: asyncio.Event | None = None
        #: Created by the first event with a ``seq``: most idle sockets never see one.
        self._sequencer: Sequencer | None = None
        #: Fill tasks in flight; ``None`` while there are none.
        self._tasks: set[asyncio.Task[None]] | None = None
        self._session: int | None = None
        self.state = State.GREETING
        #: The close code the platform ended the socket with; None when the client did.
        self.close_code: int | None = None
        # Thread of the user_message being submitted; its live events wait for the ack.
        self._submitting: ThreadID | None = None
        # Live events held back until ``hello`` or the ack of ``_submitting``; ``None`` if none.
        self._deferred: list[dict[str, Any]] | None = None

    # --- Member ------------------------------------------------------------------------

    @property
    def user_id(self) -> UserID:
        return self.principal.user_id

    @property
    def session(self) -> int | None:
        return self._session

    @session.setter
    def session(self, generation: int) -> None:
        self._session = generation

    def deliver(self, event: dict[str, Any]) -> None:
        if self.state is State.CLOSING:
            return
        if self.state is State.GREETING:
            self._defer(event)
            return
        key = protocol.event_seq(event)
        if key is None:
            self.offer(event)
            return
        thread, seq = key
        if thread == self._submitting:
            self._defer(event)
            return
        sequencer = self._sequence()
        expected = sequencer.expected_run(thread)
        if expected is not None and not (
            event.get("run_id") == expected and event.get("type") == "agent_started"
        ):
            # The thread's first event here, and not the start of the run acked to this
            # socket: replay from that run's first event if pub/sub lost some.
            token = sequencer.start_run_fill(thread, seq)
            self._spawn(self._fill_run(thread, expected, seq, token))
            return
        step = sequencer.on_live(thread, seq)
        if step is Step.DELIVER:
            self.offer(event)
        elif step is Step.FILL:
            self._spawn(self._fill(thread, None))
        else:
            self._edge.counters.inc(series("events_skipped_total", reason=step.value))

    def kick(self, generation: int) -> None:
        self.close(CloseCode.REPLACED, f"replaced by a newer session (generation {generation})")

    def resync(self, since: float) -> None:
        """Replay, thread by thread, what this socket missed while pub/sub was down: a gap
        fill from the last seq it delivered (nothing is sent twice); for a thread it was
        acked a run of but has seen nothing of, that run from its first event; and for any
        other thread of its user that has seen nothing here, the first run executing since
        ``since``, from its first event (another socket of the user sent it, and all its
        events may have been published while pub/sub was down). The thread of a message
        being submitted is left to its own live events, whose ack must come first."""
        if self.state is not State.OPEN:
            return
        sequencer = self._sequencer
        if sequencer is not None:
            for thread in sequencer.threads():
                if thread != self._submitting and sequencer.resync(thread):
                    self._spawn(self._fill(thread, None))
            for thread, run in sequencer.expected():
                if thread != self._submitting:
                    self._spawn(self._fill_run(thread, run))
        self._spawn(self._fill_unseen(since))

    async def _fill_unseen(self, since: float) -> None:
        """The third case of :meth:`resync`: threads of the user with a run executing since
        ``since`` that this socket has seen nothing of, each from that run's first event."""
        try:
            active = await db.retrying(
                f"socket {self.socket_id} looking up its user's runs",
                functools.partial(self._edge.runs_active_since, self.user_id, since),
                within_s=self._edge.settings.database_outage_wait_s,
            )
        except Exception as exc:
            lost = unavailable(exc)
            if lost is None:
                raise
            self._error(lost)
            return
        for thread, run in active:
            if self.state is not State.OPEN:
                return
            sequencer = self._sequence()
            if thread == self._submitting or sequencer.last(thread) is not None:
                continue
            if sequencer.expected_run(thread) is None:
                sequencer.expect(thread, run)
                self._spawn(self._fill_run(thread, run))

    def greet(self, hello: dict[str, Any]) -> None:
        """Queue ``hello`` as the socket's first frame, then the events that came before it."""
        if self.state is not State.GREETING:
            return  # closed (kicked, or shutting down) before it was greeted
        self.state = State.OPEN
        self.offer(hello)
        self._release_deferred()

    # --- outbound ----------------------------------------------------------------------

    def offer(self, frame: dict[str, Any]) -> None:
        """Queue ``frame`` for sending, or close the socket as a slow consumer."""
        if self.state is not State.OPEN:
            return
        if self.queued() >= self._capacity:
            self._edge.counters.inc("slow_consumer_closes_total")
            self.close(
                CloseCode.POLICY_VIOLATION,
                f"slow consumer: {self._capacity} frames waiting (SQUALL_SOCKET_SEND_QUEUE)",
            )
            return
        self._enqueue(protocol.encode(frame))

    def close(self, code: CloseCode, reason: str) -> None:
        """Close promptly: frames still queued are dropped (they stay replayable)."""
        if self.state is State.CLOSING:
            return
        self.state = State.CLOSING
        self.close_code = code
        if self._queue is not None:
            self._queue.clear()
        self._enqueue(_Close(code, _truncate(reason)))
        if self._room is not None:
            self._room.set()

    def queued(self) -> int:
        """Frames waiting to be sent."""
        return 0 if self._queue is None else len(self._queue)

    @property
    def writing(self) -> bool:
        """Whether a writer task exists: only while frames wait to be sent."""
        return self._writer is not None

    def _enqueue(self, item: str | _Close) -> None:
        if self._queue is None:
            self._queue = collections.deque()
        self._queue.append(item)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write(), name=f"ws-writer-{self.socket_id}")
        if self._room is not None and len(self._queue) > self._capacity // 2:
            self._room.clear()

    async def _write(self) -> None:
        """Send queued frames in order; end (dropping the deque) once it is empty."""
        try:
            while self._queue:
                item = self._queue.popleft()
                if self._room is not None and len(self._queue) <= self._capacity // 2:
                    self._room.set()
                if isinstance(item, _Close):
                    with contextlib.suppress(RuntimeError, OSError):
                        await self._websocket.close(int(item.code), item.reason)
                    return
                await self._websocket.send_text(item)
                self._edge.counters.inc("frames_sent_total")
        except (WebSocketDisconnect, OSError):
            self.state = State.CLOSING  # the client is gone; the reader sees it too
        except Exception as exc:
            log.error("socket %s failed to send", self.socket_id, exc_info=exc)
            self.state = State.CLOSING
            self.close_code = CloseCode.INTERNAL_ERROR
            self._edge.counters.inc(series("errors_total", code=TargetError.code))
            with contextlib.suppress(Exception):
                await self._websocket.close(int(CloseCode.INTERNAL_ERROR), "internal error")
        finally:
            # No await between the last emptiness check and here: a later offer
            # starts a new writer.
            self._writer = None
            if not self._queue:
                self._queue = None

    async def _wait_room(self) -> None:
        while self.queued() > self._capacity // 2 and self.state is State.OPEN:
            if self._room is None:
                self._room = asyncio.Event()
            self._room.clear()
            await self._room.wait()

    # --- inbound -----------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the socket until either side closes it; reads in the caller's task.

        A close sent by the writer ends the read loop too: the ASGI server reports
        ``websocket.disconnect`` as soon as the app has sent its close.
        """
        try:
            while True:
                message = await self._websocket.receive()
                if message["type"] == "websocket.disconnect":
                    if message.get("reason") == WRITE_TIMEOUT_REASON:
                        self._edge.counters.inc("write_timeouts_total")
                    if self._websocket.scope.get(CLOSED_BY_SERVER) and self.close_code is None:
                        self.close_code = int(message.get("code", CloseCode.NORMAL))
                    return
                raw = message.get("text")
                if raw is None:
                    raw = message.get("bytes") or b""
                self._edge.counters.inc("frames_received_total")
                await self._handle(raw)
        except (WebSocketDisconnect, OSError):
            pass
        except Exception as exc:
            log.error("socket %s failed", self.socket_id, exc_info=exc)
        finally:
            self.state = State.CLOSING
            pending = [*(self._tasks or ())]
            if self._writer is not None:
                # The reader ended (client closed or a receive failed): nothing more to send.
                pending.append(self._writer)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _handle(self, raw: str | bytes) -> None:
        obj: dict[str, Any] | None = None
        settings = self._edge.settings
        try:
            obj = protocol.decode_object(raw, settings.max_frame_bytes)
            frame = protocol.parse_object(obj, settings.max_content_chars)
        except TargetError as exc:
            self._error(exc, **protocol.error_context(obj))
            return
        if isinstance(frame, protocol.Ping):
            self.offer(protocol.pong_frame(frame.id, time.time()))
        elif isinstance(frame, protocol.UserMessage):
            await self._submit(frame)
        else:
            self._spawn(self._fill(frame.thread_id, frame.after_seq, resume=True))

    async def _submit(self, frame: protocol.UserMessage) -> None:
        edge = self._edge
        context = {"client_msg_id": frame.client_msg_id, "thread_id": frame.thread_id}
        self._submitting = frame.thread_id
        try:
            if edge.shutting_down:
                raise ShuttingDown("the server is shutting down; reconnect and retry")
            await edge.limiter.check(self.user_id)
            submitted = await edge.runtime.submit(
                self.user_id, frame.thread_id, frame.content, frame.client_msg_id
            )
        except TargetError as exc:
            self._end_submit()
            self._error(exc, **context)
            return
        except Exception as exc:
            self._end_submit()
            lost = unavailable(exc)
            if lost is None:
                log.exception("submit failed for user %s", self.user_id)
                self._error(TargetError(f"internal error: {type(exc).__name__}"), **context)
                return
            log.warning("submit failed for user %s: %s", self.user_id, lost.message)
            lost.message += (
                "; the message may have been stored: read the thread before sending it again"
            )
            self._error(lost, **context)
            return
        # No await from here on: the ack is queued before any event of its run.
        self._submitting = None
        self._sequence().expect(submitted.thread_id, submitted.run_id)
        self.offer(
            protocol.ack_frame(
                frame.client_msg_id, submitted.message_id, submitted.run_id, submitted.thread_id
            )
        )
        edge.counters.inc("messages_accepted_total")
        self._end_submit()

    def _end_submit(self) -> None:
        """Release the live events of the submitted thread that arrived during ``submit``."""
        self._submitting = None
        self._release_deferred()

    def _defer(self, event: dict[str, Any]) -> None:
        if self._deferred is None:
            self._deferred = []
        self._deferred.append(event)

    def _release_deferred(self) -> None:
        deferred, self._deferred = self._deferred, None
        for event in deferred or ():
            self.deliver(event)

    def _sequence(self) -> Sequencer:
        if self._sequencer is None:
            self._sequencer = Sequencer()
        return self._sequencer

    async def _fill_run(
        self, thread: ThreadID, run: str, live_seq: int | None = None, token: int | None = None
    ) -> None:
        """Replay ``thread`` from the first event of ``run``, the first run acked to this
        socket on it (see :meth:`Sequencer.expect`): after a resync (``live_seq`` None;
        nothing while the run has stored nothing, or once live delivery began), or when
        the thread's first live event here, ``live_seq``, is not that run's start (from
        the earlier of the two; the fill ``token`` already holds ``live_seq``)."""
        sequencer = self._sequence()
        try:
            first = await db.retrying(
                f"socket {self.socket_id} looking up run {run}",
                functools.partial(self._edge.first_seq_of_run, self.user_id, thread, run),
                within_s=self._edge.settings.database_outage_wait_s,
            )
        except Exception as exc:
            if token is not None:
                sequencer.abort_fill(thread, token)
            if isinstance(exc, TargetError):
                return
            lost = unavailable(exc)
            if lost is None:
                raise
            self._error(lost, thread_id=thread)
            return
        if live_seq is not None:
            await self._fill(thread, live_seq - 1 if first is None else min(first, live_seq) - 1)
        elif first is not None and sequencer.expected_run(thread) == run:
            await self._fill(thread, first - 1)

    async def _fill(self, thread: ThreadID, after_seq: int | None, *, resume: bool = False) -> None:
        """Replay ``thread`` from the cursor (``after_seq`` None: a gap fill) or from
        ``after_seq``; a ``resume`` ends with ``resume_done``."""
        sequencer = self._sequence()
        token = sequencer.start_fill(thread, after_seq)
        page_size = replay_page(self._capacity)
        try:
            while True:
                start = sequencer.last(thread) or 0
                # A lost database connection is waited out: live events of the thread wait
                # behind the fill, so giving up would stall them (the replay is a read).
                page = await db.retrying(
                    f"socket {self.socket_id} replaying thread {thread}",
                    functools.partial(self._edge.replay, self.user_id, thread, start, page_size),
                    within_s=self._edge.settings.database_outage_wait_s,
                )
                # The page goes into a queue at most half full (see replay_page), with no
                # await from that check to its last frame: fills of other threads running
                # at once (a resync starts one per thread) wait their turn.
                await self._wait_room()
                if self.state is not State.OPEN:
                    return
                accepted = sequencer.accept_page(thread, token, [int(e["seq"]) for e in page])
                if accepted is None:
                    return  # superseded by a newer fill of the same thread
                for index in accepted:
                    self.offer(page[index])
                if len(page) < page_size and sequencer.finish_fill(thread, token):
                    break
        except NotFound as exc:
            sequencer.abort_fill(thread, token)
            if resume:
                self._error(exc, thread_id=thread)
            return
        except TargetError as exc:
            sequencer.abort_fill(thread, token)
            self._error(exc, thread_id=thread)
            return
        except Exception as exc:
            lost = unavailable(exc)
            if lost is None:
                raise
            # The database stayed away: the client learns it and may resume later.
            sequencer.abort_fill(thread, token)
            log.warning("socket %s gave up replaying %s: %s", self.socket_id, thread, lost.message)
            self._error(lost, thread_id=thread)
            return
        self._edge.counters.inc(series("fills_total", kind="resume" if resume else "gap"))
        if resume:
            self.offer(protocol.resume_done_frame(thread, sequencer.last(thread) or 0))

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        if self._tasks is None:
            self._tasks = set()
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if self._tasks is not None:
            self._tasks.discard(task)
            if not self._tasks:
                self._tasks = None
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("socket %s task failed", self.socket_id, exc_info=exc)
            self._error(TargetError(f"internal error: {type(exc).__name__}"))

    def _error(self, exc: TargetError, **context: str) -> None:
        self._edge.counters.inc(series("errors_total", code=exc.code))
        self.offer(
            protocol.error_frame(
                exc, client_msg_id=context.get("client_msg_id"), thread_id=context.get("thread_id")
            )
        )

    def __repr__(self) -> str:
        sequencer = self._sequencer or Sequencer()
        return (
            f"<Connection {self.socket_id} user={self.user_id} {self.state.value} "
            f"queued={self.queued()}/{self._capacity} writing={self.writing} {sequencer!r}>"
        )


def _truncate(reason: str) -> str:
    data = reason.encode()[:MAX_REASON_BYTES]
    return data.decode(errors="ignore")


async def websocket_endpoint(websocket: WebSocket, edge: Edge) -> None:
    """Authenticate, admit (socket cap, single session), greet, then serve the socket.

    An error nobody expected is counted as ``errors_total{code="internal"}``, closes the
    socket with 1011 and escapes to the server, which logs it with its traceback.
    """
    try:
        await _serve_socket(websocket, edge)
    except Exception:
        edge.counters.inc(series("errors_total", code=TargetError.code))
        with contextlib.suppress(Exception):  # the socket may be gone already
            await websocket.close(int(CloseCode.INTERNAL_ERROR), TargetError.code)
        raise


async def _serve_socket(websocket: WebSocket, edge: Edge) -> None:
    principal = await _authenticate(websocket, edge)
    if principal is None:
        return
    connection = Connection(websocket, edge, principal)
    user = principal.user_id
    try:
        admitted = await edge.sessions.claim_socket(user, connection.socket_id)
    except Exception as exc:
        await _refuse_if_unavailable(websocket, edge, exc)
        return
    if not admitted:
        limit = edge.settings.max_sockets_per_user
        error = TooManySockets(
            f"user {user!r} already has {limit} open sockets (SQUALL_MAX_SOCKETS_PER_USER); "
            "close one first"
        )
        await _refuse(websocket, edge, error, CloseCode.POLICY_VIOLATION)
        return
    edge.register(connection)
    edge.counters.inc("sockets_opened_total")
    try:
        try:
            await edge.hub.attach(connection)
            if edge.settings.session_policy == "single_session":
                generation = await edge.sessions.claim_session(user)
                connection.session = generation
                if edge.hub.superseded(connection):
                    connection.kick(generation)
        except Exception as exc:
            await _refuse_if_unavailable(websocket, edge, exc)
            return
        connection.greet(
            protocol.hello_frame(os.getpid(), connection.socket_id, user, connection.session)
        )
        await connection.run()
    except Exception:
        if connection.close_code is None:  # the server closes it with 1011
            connection.close_code = CloseCode.INTERNAL_ERROR
        raise
    finally:
        edge.unregister(connection)
        edge.hub.detach(connection)
        with contextlib.suppress(Exception):
            await edge.sessions.release_socket(user, connection.socket_id)
        code = connection.close_code
        edge.counters.inc(series("sockets_closed_total", code=str(int(code)) if code else "client"))


async def _refuse_if_unavailable(websocket: WebSocket, edge: Edge, exc: Exception) -> None:
    """Close a socket that could not be admitted because Redis could not be reached with
    ``error unavailable`` and 1013 (try again later); re-raise any other error."""
    lost = unavailable(exc)
    if lost is None and isinstance(exc, SubscribeTimeout):
        lost = Unavailable(str(exc))
    if lost is None:
        raise exc
    log.warning("socket refused: %s", lost.message)
    await _refuse(websocket, edge, lost, CloseCode.TRY_AGAIN_LATER)


async def _refuse(websocket: WebSocket, edge: Edge, error: TargetError, code: CloseCode) -> None:
    """Tell a socket that is not admitted why (an error frame, counted) and close it with
    ``code``; a client already gone is no error of the platform's."""
    edge.counters.inc(series("errors_total", code=error.code))
    with contextlib.suppress(Exception):
        await websocket.send_text(protocol.encode(protocol.error_frame(error)))
        edge.counters.inc("frames_sent_total")
        await websocket.close(int(code), error.code)


async def _authenticate(websocket: WebSocket, edge: Edge) -> Principal | None:
    """Accept the socket; ``None`` once it is closed with 4401 (bad token) or 1001 (shutdown).

    A function of its own so the token and the handshake's credentials are not
    kept, for the socket's life, in the frame that serves it.
    """
    credentials = find_token(websocket.scope.get("headers", []))
    subprotocol = credentials.subprotocol if credentials is not None else None
    try:
        principal = edge.auth.verify(credentials.token if credentials else None)
    except Unauthorized as exc:
        edge.counters.inc("auth_failures_total")
        # Accept only to deliver the close code: a refused handshake cannot carry 4401.
        await websocket.accept(subprotocol=subprotocol)
        await websocket.close(int(CloseCode.UNAUTHORIZED), _truncate(str(exc)))
        return None
    await websocket.accept(subprotocol=subprotocol)
    if edge.shutting_down:
        await websocket.close(int(CloseCode.GOING_AWAY), "server shutting down")
        return None
    return principal
