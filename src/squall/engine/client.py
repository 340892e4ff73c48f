"""A timed WebSocket client for behaviours, built on picows.

picows parses frames in C and calls a listener synchronously for each frame, so
receiving costs one Python call per message; this client adds a small inbox
and the JSON helpers behaviours use (``send_json``, ``recv_json``, ``request``).
Everything is recorded as it happens: ``ws_connect`` time, ``messages_sent``,
``messages_received`` (counted when a message arrives, whether or not the
behaviour reads it), ``timeouts``, ``success`` and errors by kind.

JSON goes through orjson: compact UTF-8 text (``json.dumps`` with
``separators=(",", ":")`` and ``ensure_ascii=False``, non-string keys turned into
strings); NaN and infinities, which JSON has no text for, are sent as ``null``.

The inbox holds at most ``max_unread`` messages (:data:`DEFAULT_MAX_UNREAD`): messages
that arrived and that the behaviour has not read yet, a burst read in one go included.
One more, and the socket records an ``inbox_overflow`` error and closes itself (1008):
a target flooding a socket the behaviour never reads would otherwise grow the
generator's memory until the machine kills it, and the run's results with it.

Sends wait while the target takes data slower than the behaviour sends it: once the
transport's buffer is above its high-water mark (picows' ``pause_writing``; the kernel's
buffers for the connection are full before that), ``send_text``, ``send_json``,
``request`` and ``request_text`` wait for it to drain below the low-water mark, up to their
``timeout``, then raise :class:`SendTimeout` (``errors.send_timeout``). So the generator's
memory stays bounded, and ``messages_sent`` counts what the target could take, not what
piled up here. A request's latency includes that wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import math
from collections import deque
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

import orjson
import picows
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport

from squall.engine.errors import (
    ConnectError,
    ConnectionClosed,
    EngineError,
    InboxOverflow,
    MessageTimeout,
    SendTimeout,
    UnexpectedMessage,
)
from squall.fdlimit import open_files_limit
from squall.loopback import connection_refusal
from squall.metrics.recorder import MESSAGES_RECEIVED, MESSAGES_SENT, TIMEOUTS, Recorder

Clock = Callable[[], float]
JsonObject = dict[str, Any]
_E = TypeVar("_E", bound=EngineError)


class _PicowsLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Where picows logs for squall's sockets: ``squall.engine.picows``, without picows'
    line for a frame of the target's it cannot parse (over its frame size limit, a bad
    opcode...). The socket records that error itself (``errors.protocol``, with picows'
    reason), where a thousand sockets given such a frame would print a thousand lines;
    picows' other lines (an exception in squall's own listener) pass. An adapter, not a
    logger: picows would make a child logger of a logger for every socket."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if not str(msg).startswith("WS parser error"):
            super().log(level, msg, *args, **kwargs)


PICOWS_LOG = _PicowsLog(logging.getLogger("squall.engine.picows"))

#: The loop exception handler's message for a TLS handshake that failed.
_TLS_FAILED = "SSL handshake failed"
#: The modules of picows' transports (its TLS one is aiofastnet's).
_PICOWS_TRANSPORTS = ("picows", "aiofastnet")


def _quiet_tls_failures(loop: asyncio.AbstractEventLoop) -> None:
    """Keep picows' failed TLS handshakes out of ``loop``'s exception handler.

    picows' TLS transport reports each one there as well as raising it from ``ws_connect``, with a
    traceback the logging module cannot format ("--- Logging error ---", a screen per
    socket); the socket records the failure itself as a connect error, once. Every other
    report goes on to the handler that was there (or the default one).
    """
    previous = loop.get_exception_handler()
    if getattr(previous, "quiets_tls_failures", False):
        return

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        transport = context.get("transport")
        if str(context.get("message", "")).startswith(_TLS_FAILED) and type(
            transport
        ).__module__.startswith(_PICOWS_TRANSPORTS):
            return
        if previous is None:
            loop.default_exception_handler(context)
        else:
            previous(loop, context)

    handler.quiets_tls_failures = True  # type: ignore[attr-defined]
    loop.set_exception_handler(handler)


DEFAULT_TIMEOUT_S = 10.0
#: Seconds :meth:`WebSocket.close` waits for the target's close frame before it drops the
#: connection.
CLOSE_TIMEOUT_S = 2.0
#: Messages a socket keeps unread before it closes itself (``inbox_overflow``).
DEFAULT_MAX_UNREAD = 10_000
#: The largest message taken in fragments, as picows takes in one frame: a message whose
#: fragments never end would otherwise grow the generator's memory without bound.
MAX_MESSAGE_BYTES = 10 * 1024 * 1024
SUCCESS = "success"
#: ``close_code`` of a close frame that carried no status code (RFC 6455, 7.1.5).
NO_STATUS_CODE = 1005

_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY
_CONTINUATION = WSMsgType.CONTINUATION
_CLOSE = WSMsgType.CLOSE


#: orjson.dumps options for the wire: non-string keys become strings, as with json.dumps.
_DUMPS_OPTIONS = orjson.OPT_NON_STR_KEYS


class Origin:
    """Where the latency of the next timed operation is measured from.

    In the open model an iteration's first timed operation is measured from its send
    time less the iteration's schedule lag (``pending``: how late the iteration began
    after its intended start), so a generator that fell behind its schedule shows up as
    latency, while the behaviour's own time before the send (a think time, a connect)
    does not; every other operation from its own send time. A socket reads ``pending``
    on each request and calls :meth:`take` only when it is set.
    """

    __slots__ = ("pending",)

    def __init__(self) -> None:
        self.pending: float | None = None

    def take(self, now: float) -> float:
        """The origin of an operation sent at ``now``; clears ``pending``."""
        lag = self.pending
        self.pending = None
        return now if lag is None or lag <= 0.0 else now - lag


class _Listener(WSListener):
    """picows' callbacks for one socket; a whole text frame is the fast path."""

    # Slots: attribute reads on a subclass of picows' C class are half as dear.
    __slots__ = ("_inbox", "_max_unread", "_received", "_socket")

    def __init__(self, socket: WebSocket) -> None:
        self._socket = socket
        self._inbox = socket._inbox
        self._max_unread = socket._max_unread
        self._received = socket._received

    def on_ws_connected(self, transport: WSTransport) -> None:
        self._socket._transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is _TEXT and frame.fin and not transport.is_close_frame_sent:
            self._received[0] += 1
            waiter = self._socket._waiter
            try:  # free unless it raises
                if waiter is not None and not waiter.done():
                    # The reader waits on an empty inbox: the message goes to it directly.
                    waiter.set_result(frame.get_payload_as_utf8_text())
                elif len(self._inbox) < self._max_unread:
                    self._inbox.append(frame.get_payload_as_utf8_text())
                else:
                    self._socket._overflow()
            except UnicodeDecodeError as exc:
                self._received[0] -= 1  # not a message: as the other path counts it
                self._socket._not_utf8(frame.get_payload_as_bytes(), exc)
        else:
            self._socket._on_frame(transport, frame)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self._socket._on_disconnected()

    def pause_writing(self) -> None:
        self._socket._pause_writing()

    def resume_writing(self) -> None:
        self._socket._resume_writing()


class WebSocket:
    """One client connection. Not for concurrent readers: one task reads at a time.

    Waiting for a message costs one future; its timeout is one timer per
    socket, armed at the earliest pending deadline and moved forward only when
    it fires while a later deadline is pending (so back-to-back requests do not
    create and cancel a timer each).
    """

    # Slots: a load run holds thousands of these and touches each once per message;
    # without a per-instance dict each touch reads fewer cache lines.
    __slots__ = (
        "_clock",
        "_deadline",
        "_disconnected",
        "_fragment_type",
        "_fragmented",
        "_fragments",
        "_inbox",
        "_loop",
        "_max_unread",
        "_on_close",
        "_origin",
        "_paused",
        "_protocol_closed",
        "_received",
        "_recorder",
        "_sent",
        "_success",
        "_timer",
        "_timer_at",
        "_transport",
        "_waiter",
        "close_code",
        "close_reason",
        "count_close",
        "subprotocol",
        "url",
    )

    def __init__(
        self,
        url: str,
        recorder: Recorder,
        clock: Clock,
        origin: Origin | None = None,
        on_close: Callable[[WebSocket], None] | None = None,
        max_unread: int = DEFAULT_MAX_UNREAD,
    ) -> None:
        self.url = url
        self.subprotocol: str | None = None
        #: Close code and reason received from the server (None until it closes), or the
        #: ones this socket sent when it closed first: by :meth:`close`, 1008 on
        #: ``inbox_overflow``, 1007 on a text frame that is not UTF-8, picows' own on a
        #: frame it cannot take (1009 above its 10 MiB frame limit); the last two are
        #: counted in ``errors.protocol``.
        self.close_code: int | None = None
        self.close_reason: str = ""
        #: Set by a reader that knows the target's protocol (an adapter's chat): called
        #: with the :class:`ConnectionClosed` a send or receive is about to raise after the
        #: target closed the socket (its close frame came first), it returns True when it
        #: counted that error itself (as the server's refusal of the socket, say), and the
        #: socket then leaves ``errors.closed`` alone. None, or False: ``errors.closed``.
        self.count_close: Callable[[ConnectionClosed], bool] | None = None
        #: Whether this socket closed itself over a frame of the target's, that error
        #: recorded: the :class:`ConnectionClosed` a send or receive raises after it is that
        #: same failure, not counted again.
        self._protocol_closed = False
        self._recorder = recorder
        #: The recorder's cells for the counters and the rate every message touches.
        self._sent = recorder.counter_cell(MESSAGES_SENT)
        self._received = recorder.counter_cell(MESSAGES_RECEIVED)
        self._success: list[int] | None = None
        self._clock = clock
        self._origin = origin if origin is not None else Origin()
        self._on_close = on_close
        self._transport: WSTransport | None = None
        self._inbox: deque[str | bytes] = deque()
        self._max_unread = max_unread
        self._fragments: list[bytes] = []
        #: Bytes of the message in fragments so far.
        self._fragmented = 0
        self._fragment_type = WSMsgType.TEXT
        #: What the one waiting reader is woken with: the next message itself (a whole
        #: text frame), True when one was queued in the inbox or the socket closed, False
        #: at its deadline.
        self._waiter: asyncio.Future[str | bytes | bool] | None = None
        self._disconnected = False
        self._loop = asyncio.get_running_loop()
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        #: While the transport's buffer is above its high-water mark, a future resolved
        #: when it drains (or the socket closes); None while sends may go out.
        self._paused: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"WebSocket({self.url!r}, {state}, inbox={len(self._inbox)})"

    @property
    def closed(self) -> bool:
        return self._disconnected

    async def __aenter__(self) -> WebSocket:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- picows callbacks (synchronous, on the event loop) --

    def _on_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if self._disconnected:
            return
        if transport.is_close_frame_sent and self.close_code is None:
            # picows closed the socket on a frame it cannot take (over its size limit, a
            # bad opcode) and drops it 10 ms later; its parser reads on meanwhile and hands
            # over that very frame and those after it. None is a message: the socket ends now.
            self._on_disconnected()
            return
        kind = frame.msg_type
        if transport.is_close_frame_sent and kind is not _CLOSE:
            return  # after this socket's close (a frame that was not UTF-8, say): no message
        if kind is _TEXT or kind is _BINARY:
            if frame.fin:
                payload = frame.get_payload_as_bytes()
                if kind is _TEXT:
                    self._deliver_text(payload)
                else:
                    self._deliver(payload)
            else:
                self._fragment_type = kind
                first = frame.get_payload_as_bytes()
                self._fragments = [first]
                self._fragmented = len(first)
        elif kind is _CONTINUATION:
            more = frame.get_payload_as_bytes()
            self._fragmented += len(more)
            if self._fragmented > MAX_MESSAGE_BYTES:
                self._too_big()
                return
            self._fragments.append(more)
            if frame.fin:
                data = b"".join(self._fragments)
                self._fragments = []
                self._fragmented = 0
                if self._fragment_type is _TEXT:
                    self._deliver_text(data)
                else:
                    self._deliver(data)
        elif kind is _CLOSE:
            # Unless this socket or picows closed first: then the server answers that close.
            if self.close_code is None and not transport.is_close_frame_sent:
                code = frame.get_close_code()
                if code is WSCloseCode.NO_INFO:
                    # A close frame with no status: 1005 (RFC 6455, 7.1.5), answered with
                    # 1000, as a 0 on the wire is no code an endpoint may send.
                    self.close_code, code = NO_STATUS_CODE, WSCloseCode.OK
                else:
                    self.close_code = code.value
                self.close_reason = frame.get_close_reason() or ""
                transport.send_close(code)
            transport.disconnect()

    def _deliver_text(self, data: bytes) -> None:
        try:
            text = data.decode()
        except UnicodeDecodeError as exc:
            self._not_utf8(data, exc)
            return
        self._deliver(text)

    def _deliver(self, payload: str | bytes) -> None:
        self._received[0] += 1
        if len(self._inbox) < self._max_unread:
            self._inbox.append(payload)
            self._wake(True)
        else:
            self._overflow()

    def _overflow(self) -> None:
        """A message arrived with ``max_unread`` unread: record it, close the socket
        (once; the messages arriving until it is closed are dropped)."""
        transport = self._closable()
        if transport is None:
            return
        limit = self._max_unread
        self._close_itself(
            transport,
            WSCloseCode.POLICY_VIOLATION,
            f"{limit} messages unread",
            InboxOverflow(
                f"{self.url}: {limit} messages arrived unread (max_unread); the behaviour "
                "reads this socket too slowly or not at all. Read its messages (recv, "
                "recv_json) or open it with a larger max_unread. Socket closed (1008); "
                "the messages already in its inbox can still be read"
            ),
        )

    def _not_utf8(self, data: bytes, exc: UnicodeDecodeError) -> None:
        """A text frame that is not UTF-8: record it, close the socket with 1007 (RFC 6455
        requires the close) once."""
        transport = self._closable()
        if transport is None:
            return
        self._close_itself(
            transport,
            WSCloseCode.INVALID_TEXT,
            "text frame not valid UTF-8",
            UnexpectedMessage(
                f"{self.url}: the target sent a text frame that is not valid UTF-8 ({exc}; "
                f"it begins {data[:40]!r}); WebSocket text must be UTF-8: socket closed (1007)"
            ),
        )

    def _too_big(self) -> None:
        """A message in fragments past :data:`MAX_MESSAGE_BYTES`: record it, drop what
        arrived of it and close the socket with 1009 (RFC 6455's "message too big") once."""
        size, self._fragments, self._fragmented = self._fragmented, [], 0
        transport = self._closable()
        if transport is None:
            return
        self._close_itself(
            transport,
            WSCloseCode.MESSAGE_TOO_BIG,
            "message too big",
            UnexpectedMessage(
                f"{self.url}: the target sent a message of at least {size:,} bytes in "
                f"fragments, past the limit of {MAX_MESSAGE_BYTES:,}: socket closed (1009)"
            ),
        )

    def _closable(self) -> WSTransport | None:
        """The transport this socket can close itself through, None once it is closed or
        closing (the frames still arriving until then change nothing)."""
        transport = self._transport
        if transport is None or self.close_code is not None or self._disconnected:
            return None
        return transport

    def _close_itself(
        self, transport: WSTransport, code: WSCloseCode, reason: str, error: EngineError
    ) -> None:
        """Close the socket from this side over a frame of the target's: ``code`` and
        ``reason`` become its close code and reason, ``error`` is recorded."""
        self.close_code = int(code.value)
        self.close_reason = reason
        self._record(error)
        self._protocol_closed = True
        transport.send_close(code, reason.encode())
        transport.disconnect()

    def _broke_protocol(self, transport: WSTransport) -> None:
        """picows closed the connection on a frame of the target's it cannot take (over
        its frame size limit, a bad opcode...): record why, as the socket's close code and
        reason and in ``errors.protocol``, and take the error picows keeps for
        ``wait_disconnected`` (asyncio would print it with a traceback)."""
        handshake = transport.close_handshake
        if handshake is None or handshake.sent is None or handshake.recv_then_sent:
            return  # the connection dropped, or the server closed first
        sent = handshake.sent
        self.close_code = int(sent.code.value)
        self.close_reason = sent.reason or ""
        if sent.code == WSCloseCode.INTERNAL_ERROR:
            return  # this client's own listener raised: picows logs it with its traceback
        self._protocol_closed = True
        self._record(
            UnexpectedMessage(
                f"{self.url}: the target broke the WebSocket protocol "
                f"({self.close_reason or 'no reason given'}): socket closed ({self.close_code})"
            )
        )
        task = self._loop.create_task(transport.wait_disconnected())
        task.add_done_callback(_take_error)

    def _on_disconnected(self) -> None:
        if self._disconnected:
            return
        self._disconnected = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        transport = self._transport
        if self.close_code is None and transport is not None:
            self._broke_protocol(transport)
        if self.close_code is None:
            self.close_code = int(WSCloseCode.ABNORMAL_CLOSURE.value)
        if self._on_close is not None:
            self._on_close(self)
        self._resume_writing()
        self._wake(True)

    def _pause_writing(self) -> None:
        if self._paused is None:
            self._paused = self._loop.create_future()

    def _resume_writing(self) -> None:
        paused, self._paused = self._paused, None
        if paused is not None and not paused.done():
            paused.set_result(None)

    async def _wait_writable(self, timeout: float) -> None:  # noqa: ASYNC109
        """Wait while the transport's buffer is above its high-water mark (the target
        takes data slower than it is sent), up to ``timeout``; :class:`SendTimeout` after."""
        deadline = self._loop.time() + timeout
        while (paused := self._paused) is not None:
            remaining = deadline - self._loop.time()
            if remaining <= 0.0:
                raise self._record(
                    SendTimeout(
                        f"{self.url}: the target took no data for {timeout:g} s while a "
                        "message waited to be sent (the connection's buffers are full): it "
                        "reads slower than this behaviour sends, or not at all"
                    )
                )
            # wait() leaves the shared future alone when it times out.
            await asyncio.wait((paused,), timeout=remaining)

    def _wake(self, arrived: bool) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(arrived)

    # -- waiting --

    def _arm(self, deadline: float) -> asyncio.Future[str | bytes | bool]:
        """A future for the next message, disconnect or ``deadline`` (loop time)."""
        if self._waiter is not None:
            raise RuntimeError(
                f"{self.url}: two tasks are reading the same WebSocket; read from one task "
                "and hand messages to others through a queue"
            )
        loop = self._loop
        waiter: asyncio.Future[str | bytes | bool] = loop.create_future()
        self._waiter = waiter
        self._deadline = deadline
        timer = self._timer
        if timer is not None:
            if deadline >= self._timer_at:
                return waiter  # it fires first, then moves to ``deadline``
            timer.cancel()
            self._timer = None
        if deadline < math.inf:
            self._timer = loop.call_at(deadline, self._on_timer)
            self._timer_at = deadline
        return waiter

    def _on_timer(self) -> None:
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._deadline <= self._timer_at:
            waiter.set_result(False)
        else:
            self._timer = self._loop.call_at(self._deadline, self._on_timer)
            self._timer_at = self._deadline

    def _timed_out(self, within: float) -> MessageTimeout:
        error = MessageTimeout(f"{self.url}: no message within {within:g} s")
        error.recorded = True
        return error

    # -- sending --

    def _closed_error(self, doing: str) -> ConnectionClosed:
        if self.close_code == WSCloseCode.ABNORMAL_CLOSURE.value and not self.close_reason:
            how = (
                "connection dropped without a close frame (code 1006: reset or ended by the "
                "target or the network)"
            )
        else:
            how = f"connection closed (code {self.close_code}, reason {self.close_reason!r})"
        error = ConnectionClosed(
            f"{self.url}: {how} while {doing}", self.close_code, self.close_reason
        )
        if self._protocol_closed:
            error.recorded = True  # as the protocol error or overflow that closed it
            return error
        count = self.count_close
        if count is not None and self._target_closed() and count(error):
            error.recorded = True
            return error
        return self._record(error)

    def _target_closed(self) -> bool:
        """Whether the target began the close: its close frame came before this socket
        sent one (not a connection dropped, nor a close of this socket's own)."""
        transport = self._transport
        handshake = None if transport is None else transport.close_handshake
        return handshake is not None and handshake.recv is not None and handshake.recv_then_sent

    def _record(self, error: _E) -> _E:
        self._recorder.error(error.kind, str(error))
        error.recorded = True
        return error

    def _send(self, text: str | bytes) -> None:
        transport = self._transport
        if transport is None or self._disconnected:
            raise self._closed_error("sending")
        transport.send(_TEXT, text)
        self._sent[0] += 1

    async def send_text(self, text: str | bytes, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:  # noqa: ASYNC109
        """Send one text message (``bytes`` must be UTF-8); waits while the target takes
        no data, up to ``timeout`` (module docstring)."""
        if self._paused is not None:
            await self._wait_writable(timeout)
        self._send(text)

    async def send_json(self, obj: Any, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:  # noqa: ASYNC109
        """Send ``obj`` as one JSON text message, as :meth:`send_text` does."""
        if self._paused is not None:
            await self._wait_writable(timeout)
        self._send(orjson.dumps(obj, option=_DUMPS_OPTIONS))

    # -- receiving --

    async def recv(self, timeout: float = DEFAULT_TIMEOUT_S) -> str | bytes:  # noqa: ASYNC109
        """The next message as received; counts a timeout and raises MessageTimeout if none."""
        inbox = self._inbox
        if inbox:
            return inbox.popleft()
        deadline = self._loop.time() + timeout
        while not inbox:
            if self._disconnected:
                raise self._closed_error("waiting for a message")
            waiter = self._arm(deadline)
            try:
                woken = await waiter
            finally:
                self._waiter = None
            if woken is False and not inbox:
                self._recorder.count(TIMEOUTS)
                raise self._timed_out(timeout)
            if woken is not True and woken is not False:
                return woken  # the message itself
        return inbox.popleft()

    def _parse(self, raw: str | bytes) -> JsonObject:
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise self._not_an_object(raw, exc) from None
        if type(value) is not dict:
            raise self._not_an_object(raw)
        return value

    def _not_an_object(
        self, raw: str | bytes, refused: orjson.JSONDecodeError | None = None
    ) -> UnexpectedMessage:
        """The error for a message that is no JSON object: not JSON that strict parsers
        read (``refused``: NaN, 1e400, an integer past 64 bits, a lone surrogate, or no JSON
        at all, with the parser's reason), or JSON of another type."""
        why = "" if refused is None else f" (not strict JSON: {refused})"
        return self._record(
            UnexpectedMessage(
                f"{self.url}: expected a JSON object message, got {str(raw)[:120]!r}{why}"
            )
        )

    def take_unread_json(self) -> list[JsonObject]:
        """The messages received and not read yet, parsed as :meth:`recv_json` parses them
        and taken now, without waiting (oldest first); one that is not a JSON object is
        counted as :meth:`recv_json` counts it and left out."""
        taken = []
        inbox = self._inbox
        while inbox:
            with contextlib.suppress(UnexpectedMessage):
                taken.append(self._parse(inbox.popleft()))
        return taken

    async def recv_json(self, timeout: float = DEFAULT_TIMEOUT_S) -> JsonObject:  # noqa: ASYNC109
        """The next message, parsed as a JSON object."""
        return self._parse(await self.recv(timeout))

    def request(
        self,
        obj: Any,
        *,
        until: Callable[[JsonObject], bool] | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        metric: str | None = "response_time",
    ) -> Coroutine[Any, Any, JsonObject]:
        """Send ``obj`` as JSON; return the first reply (a JSON object) for which ``until``
        holds (any if None).

        Messages that do not match are discarded (they were counted as received);
        a message that is not a JSON object raises :class:`UnexpectedMessage`.
        The time from the send — or, in the open model, for an iteration's first
        request, from the send less the iteration's schedule lag — to the match is
        recorded in the trend ``metric``; ``success`` records whether a match arrived in time.
        (A plain ``def`` returning the exchange's coroutine: one coroutine per
        request instead of two.)
        """
        text = orjson.dumps(obj, option=_DUMPS_OPTIONS)
        return self._exchange(text, True, until, timeout, metric)

    def request_text(
        self,
        text: str | bytes,
        *,
        until: Callable[[str | bytes], bool] | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        metric: str | None = "response_time",
    ) -> Coroutine[Any, Any, str | bytes]:
        """:meth:`request` for messages as they are on the wire: sends ``text`` (``bytes``
        must be UTF-8) as one text message and returns the first message, unparsed, for
        which ``until`` holds. Timed and counted like :meth:`request`; for protocols
        that are not JSON, or payloads encoded once ahead of time.
        """
        return self._exchange(text, False, until, timeout, metric)

    async def _exchange(
        self,
        text: str | bytes,
        parse: bool,
        until: Callable[[Any], bool] | None,
        timeout: float,  # noqa: ASYNC109
        metric: str | None,
    ) -> Any:
        """Send ``text``, wait for the first (parsed, with ``parse``) message ``until``
        accepts, and record the round trip: the whole of :meth:`request`."""
        clock = self._clock
        started = clock()
        if self._origin.pending is not None:  # the open model's first request of an iteration
            started = self._origin.take(started)
        if self._paused is not None:
            try:
                await self._wait_writable(timeout)
            except Exception:  # SendTimeout, or the socket closed while it waited
                self._recorder.rate(SUCCESS, False)
                raise
        # _send, inlined: this runs for every request.
        transport = self._transport
        if transport is None or self._disconnected:
            self._recorder.rate(SUCCESS, False)  # asked for and never answered
            raise self._closed_error("sending")
        transport.send(_TEXT, text)
        self._sent[0] += 1
        inbox = self._inbox
        loop = self._loop
        deadline = loop.time() + timeout
        try:
            while True:
                if inbox:
                    message: Any = inbox.popleft()
                else:
                    if self._disconnected:
                        raise self._closed_error("waiting for a message")
                    # _arm, inlined while the socket's timer fires no later than ``deadline``.
                    if (
                        self._waiter is None
                        and self._timer is not None
                        and deadline >= self._timer_at
                    ):
                        waiter = self._waiter = loop.create_future()
                        self._deadline = deadline
                    else:
                        waiter = self._arm(deadline)
                    try:
                        message = await waiter
                    finally:
                        self._waiter = None
                    if message is False:  # the deadline passed
                        if not inbox:
                            raise self._timed_out(timeout)
                        continue
                    if message is True:  # queued in the inbox, or the socket closed
                        continue
                if parse:
                    # _parse, inlined: this runs for every request.
                    try:
                        value = orjson.loads(message)
                    except orjson.JSONDecodeError as exc:
                        raise self._not_an_object(message, exc) from None
                    if type(value) is not dict:
                        raise self._not_an_object(message)
                    message = value
                if until is None or until(message):
                    break
        except MessageTimeout:
            self._recorder.count(TIMEOUTS)
            self._recorder.rate(SUCCESS, False)
            raise
        except Exception:  # the socket closed, a reply not JSON, ``until`` raised
            self._recorder.rate(SUCCESS, False)
            raise
        if metric is not None:
            elapsed = clock() - started
            buffer = self._recorder.buffers.get(metric)
            if buffer is None:
                buffer = self._recorder.trend_buffer(metric)
            buffer.append(elapsed if elapsed > 0.0 else 0.0)
        success = self._success
        if success is None:
            success = self._success = self._recorder.rate_cell(SUCCESS)
        success[0] += 1  # [passes, failures]
        return message

    async def close(
        self,
        code: int = 1000,
        reason: str = "",
        timeout: float = CLOSE_TIMEOUT_S,  # noqa: ASYNC109
    ) -> None:
        """Close politely (close frame, wait up to ``timeout`` for the server's), then drop
        the socket."""
        transport = self._transport
        if transport is None or self._disconnected:
            return
        if self.close_code is None:
            # This socket closes first: the server's close frame only answers it.
            self.close_code, self.close_reason = code, reason
        transport.send_close(WSCloseCode(code), reason.encode())
        try:
            async with asyncio.timeout(timeout):
                await transport.wait_disconnected()
        except TimeoutError:
            transport.disconnect(False)
        self._on_disconnected()


def upgrade_refused(status: int | None, detail: str, location: str | None = None) -> str:
    """Why an upgrade answered with HTTP ``status`` (None: no HTTP answer) failed, and what
    to check, for a :class:`ConnectError`'s message; ``detail`` is picows' own words."""
    if status is None:
        return f"no HTTP response came back: {detail}; is it a WebSocket server, on that port?"
    if 300 <= status < 400:
        return (
            f"HTTP {status}, a redirect to {location!r}; squall does not follow "
            "redirects: connect to the URL the service answers on"
        )
    if status in (401, 403, 407):
        check = "the target refused the credentials: check the Authorization header / token"
    elif status in (404, 410):
        check = "no WebSocket endpoint at that path: check the URL"
    elif status in (429, 503):
        check = (
            "the target turned the connection away: overloaded, or at a limit of "
            "connections or of their rate"
        )
    elif status >= 500:
        check = "the target failed while answering the upgrade: see its logs"
    else:
        check = "check the URL and the Authorization header / token"
    return f"HTTP {status}: {detail}; {check}"


def _take_error(task: asyncio.Task[None]) -> None:
    """Take the error a ``wait_disconnected`` task ended with: it is recorded already."""
    if not task.cancelled():
        task.exception()


async def connect(
    url: str,
    recorder: Recorder,
    clock: Clock,
    *,
    headers: Mapping[str, str] | None = None,
    subprotocols: Sequence[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,  # noqa: ASYNC109
    origin: Origin | None = None,
    on_close: Callable[[WebSocket], None] | None = None,
    max_unread: int = DEFAULT_MAX_UNREAD,
) -> WebSocket:
    """Open a WebSocket, recording the time to a completed upgrade as ``ws_connect``.

    ``headers`` (e.g. ``Authorization``) go into the upgrade request;
    ``subprotocols`` are offered in ``Sec-WebSocket-Protocol`` and the one the
    server picked is in :attr:`WebSocket.subprotocol`. With ``origin`` (a session's
    :class:`Origin`) an iteration's first request also counts the open model's schedule
    lag when one is pending. ``max_unread`` caps the messages kept unread (module docstring).
    """
    if type(max_unread) is not int or max_unread < 1:
        raise ValueError(
            f"max_unread={max_unread!r}: expected a positive number of messages "
            f"(default {DEFAULT_MAX_UNREAD})"
        )
    socket = WebSocket(url, recorder, clock, origin, on_close, max_unread)
    refusal = connection_refusal(url, "the scenario")
    if refusal is not None:
        raise socket._record(ConnectError(refusal))
    extra = list((headers or {}).items())
    if subprotocols:
        extra.append(("Sec-WebSocket-Protocol", ", ".join(subprotocols)))
    secure = url.lower().startswith("wss:")
    if secure:
        _quiet_tls_failures(asyncio.get_running_loop())
    started = clock()
    try:
        async with asyncio.timeout(timeout):
            transport, _ = await picows.ws_connect(
                lambda: _Listener(socket),
                url,
                extra_headers=extra,
                websocket_handshake_timeout=timeout,
                # A redirect could lead anywhere, past the loopback check above.
                max_redirects=0,
                logger_name=PICOWS_LOG,
                # The event loop's own transport: picows' aiofastnet one, on uvloop, missed a
                # reset that came while it read (uvloop closed its poll handle unsaid, as in
                # MagicStack/uvloop#552): the read waited out its timeout, and the next
                # connect given the same descriptor raised RuntimeError. Measured alike in
                # the engine benchmark (docs/benchmarks.md).
                use_aiofastnet=False,
            )
    except TimeoutError:
        raise socket._record(
            ConnectError(f"{url}: no WebSocket upgrade within {timeout:g} s")
        ) from None
    except picows.WSHandshakeError as exc:
        response = exc.response
        status = int(response.status) if response is not None else None
        location = response.headers.get("Location") if response is not None else None
        raise socket._record(
            ConnectError(
                f"{url}: WebSocket upgrade refused ({upgrade_refused(status, str(exc), location)})",
                status,
            )
        ) from exc
    except OSError as exc:
        if exc.errno == errno.EMFILE:
            raise socket._record(
                ConnectError(
                    f"{url}: cannot connect: this process has reached its open-files limit "
                    f"({open_files_limit()}); raise the hard limit (ulimit -Hn, or "
                    "LimitNOFILE for a service) or run fewer users per process"
                )
            ) from exc
        if secure and not isinstance(exc, ConnectionRefusedError):
            raise socket._record(
                ConnectError(
                    f"{url}: the TLS handshake failed ({type(exc).__name__}"
                    f"{': ' + str(exc) if str(exc) else ''}); does the target serve TLS on "
                    "this port? A plain WebSocket server takes ws://"
                )
            ) from exc
        raise socket._record(
            ConnectError(
                f"{url}: cannot connect: {exc or type(exc).__name__}; is the target listening?"
            )
        ) from exc
    except picows.WSError as exc:
        raise socket._record(
            ConnectError(f"{url}: cannot connect: {exc}; is the target listening?")
        ) from exc
    if transport.response is None:
        # picows hands back a transport, with no response, when the connection closes
        # (or is reset) after the upgrade request and before any answer.
        with contextlib.suppress(Exception):
            transport.disconnect()
        raise socket._record(
            ConnectError(
                f"{url}: the connection closed before the WebSocket upgrade was answered (or "
                "was reset: the client cannot tell); is it a WebSocket endpoint, does it "
                "accept this client, and does the network between them hold?"
            )
        )
    refused = _handshake_problem(transport.response.headers, offered_subprotocols(extra))
    if refused is not None:
        # RFC 6455 4.1: the client fails the connection (a server that picked what was not
        # offered, or compresses what the client cannot read).
        with contextlib.suppress(Exception):
            transport.disconnect()
        raise socket._record(ConnectError(f"{url}: {refused}"))
    recorder.trend("ws_connect", max(0.0, clock() - started))
    socket._transport = transport
    socket.subprotocol = transport.response.headers.get("Sec-WebSocket-Protocol")
    return socket


def offered_subprotocols(headers: Sequence[tuple[str, str]]) -> list[str]:
    """The subprotocols the upgrade request offers: every ``Sec-WebSocket-Protocol`` header
    among ``headers`` (those of ``subprotocols`` and any an adapter set itself), split."""
    return [
        value.strip()
        for name, values in headers
        if name.lower() == "sec-websocket-protocol"
        for value in values.split(",")
        if value.strip()
    ]


def _handshake_problem(headers: Mapping[str, str], offered: Sequence[str]) -> str | None:
    """What the upgrade answer agreed to that this client did not offer, or None: a
    subprotocol not among ``offered``, or any extension (it offers none, so a compressed
    frame would be read as garbage). The offer is not quoted: it may carry a token."""
    chosen = headers.get("Sec-WebSocket-Protocol")
    if chosen is not None and chosen not in offered:
        asked = f"did not offer ({len(offered)} offered)" if offered else "offered none"
        return (
            f"the server chose subprotocol {chosen[:40]!r}, which this client {asked}; "
            "the WebSocket upgrade is refused (RFC 6455 4.1)"
        )
    extensions = headers.get("Sec-WebSocket-Extensions")
    if extensions:
        return (
            f"the server agreed to extension(s) {extensions!r}, which this client did not "
            "offer; the WebSocket upgrade is refused (RFC 6455 4.1)"
        )
    return None
