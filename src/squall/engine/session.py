"""The handle a behaviour gets: connections, HTTP, clock, recorder and identity.

One :class:`Session` belongs to one virtual user and lives across its
iterations; ``iteration`` says which one is running. ``state`` is the user's own
scratch space that survives between iterations (e.g. a thread id).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping, Sequence
from typing import Any

import httpx

from squall.engine.client import (
    CLOSE_TIMEOUT_S,
    DEFAULT_MAX_UNREAD,
    DEFAULT_TIMEOUT_S,
    Clock,
    Origin,
    WebSocket,
    connect,
)
from squall.engine.identity import Identity
from squall.loopback import connection_refusal
from squall.metrics.recorder import Recorder


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context per process: building one (loading the CA store) takes ~25 ms,
    which every user creating its own would spend blocking the event loop."""
    return ssl.create_default_context()


class _Connecting:
    """``async with session.ws(url) as ws`` or ``ws = await session.ws(url)``."""

    def __init__(self, session: Session, url: str, kwargs: dict[str, Any]) -> None:
        self._session = session
        self._url = url
        self._kwargs = kwargs
        self._socket: WebSocket | None = None

    def __await__(self) -> Generator[Any, None, WebSocket]:
        return self._session._open(self._url, **self._kwargs).__await__()

    async def __aenter__(self) -> WebSocket:
        self._socket = await self._session._open(self._url, **self._kwargs)
        return self._socket

    async def __aexit__(self, *exc_info: object) -> None:
        if self._socket is not None:
            await self._socket.close()


class Session:
    """A virtual user's view of the engine."""

    # Slots: every iteration reads a few of these, and with thousands of users each
    # read is likely a cache miss; they sit at fixed offsets, not in a dict. "__dict__"
    # keeps the session open to attributes a behaviour sets on it (made on first use).
    __slots__ = (
        "__dict__",
        "_http",
        "_kept",
        "_last_kept",
        "_last_url",
        "_on_connection",
        "_open_sockets",
        "clock",
        "identity",
        "iteration",
        "iterations_started",
        "origin",
        "params",
        "recorder",
        "state",
    )

    def __init__(
        self,
        identity: Identity,
        recorder: Recorder,
        clock: Clock,
        params: Mapping[str, Any],
        on_connection: Callable[[int], None] | None = None,
    ) -> None:
        self.identity = identity
        self.recorder = recorder
        self.clock = clock
        self.params = params
        self.iteration = 0
        #: How many iterations this user has begun.
        self.iterations_started = 0
        self.state: dict[str, Any] = {}
        self._on_connection = on_connection
        #: The open model's schedule lag, until the iteration's first timed operation.
        self.origin = Origin()
        self._http: httpx.AsyncClient | None = None
        self._open_sockets: set[WebSocket] = set()
        #: The connections of :meth:`connection`, by URL, each in a resolved future.
        self._kept: dict[str, asyncio.Future[WebSocket]] = {}
        #: The URL and future :meth:`connection` handed out last (a behaviour asks for
        #: the same one every iteration; no dict lookup then).
        self._last_url: str | None = None
        self._last_kept: asyncio.Future[WebSocket] | None = None

    def __repr__(self) -> str:
        return (
            f"Session(user={self.identity.user_id!r}, iteration={self.iteration}, "
            f"sockets={len(self._open_sockets)})"
        )

    def begin_iteration(self, iteration: int, schedule_lag: float | None) -> None:
        """Called by the runner; ``schedule_lag`` (seconds the iteration began after its
        intended start) is set in the open model only."""
        self.iteration = iteration
        self.iterations_started += 1
        self.origin.pending = schedule_lag

    def take_origin(self, now: float) -> float:
        """Where the latency of an operation sent at ``now`` is measured from.

        In the open model the first timed operation of an iteration is measured from
        ``now`` less the iteration's schedule lag (so a generator that fell behind its
        schedule shows up as latency, but the behaviour's own think time or connect
        before the send does not); every other one from its own send time.
        """
        return self.origin.take(now)

    def ws(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        subprotocols: Sequence[str] | None = None,
        auth: bool = True,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_unread: int = DEFAULT_MAX_UNREAD,
    ) -> _Connecting:
        """Open a WebSocket (timed as ``ws_connect``); closed on ``async with`` exit.

        With ``auth`` the identity's token is sent as ``Authorization: Bearer``
        unless ``headers`` already has an Authorization header. With ``max_unread``
        messages arrived and not read yet, one more closes the socket and records an
        ``inbox_overflow`` error.
        """
        return _Connecting(
            self,
            url,
            {
                "headers": headers,
                "subprotocols": subprotocols,
                "auth": auth,
                "timeout": timeout,
                "max_unread": max_unread,
            },
        )

    def connection(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        subprotocols: Sequence[str] | None = None,
        auth: bool = True,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_unread: int = DEFAULT_MAX_UNREAD,
    ) -> Awaitable[WebSocket]:
        """A connection kept open across iterations of this user (reopened if it closed).

        The keyword arguments are those of :meth:`ws`; they apply when the
        connection is (re)opened. While it is open this returns an already-resolved
        future holding it, so a behaviour that asks for it every iteration pays
        no coroutine for it.
        """
        if url == self._last_url:
            kept = self._last_kept
        else:
            kept = self._kept.get(url)
            self._last_url, self._last_kept = url, kept
        if kept is not None and not kept.result()._disconnected:
            return kept
        return self._reopen(url, headers, subprotocols, auth, timeout, max_unread)

    async def _reopen(
        self,
        url: str,
        headers: Mapping[str, str] | None,
        subprotocols: Sequence[str] | None,
        auth: bool,
        timeout: float,  # noqa: ASYNC109
        max_unread: int,
    ) -> WebSocket:
        socket = await self._open(
            url,
            headers=headers,
            subprotocols=subprotocols,
            auth=auth,
            timeout=timeout,
            max_unread=max_unread,
        )
        kept: asyncio.Future[WebSocket] = asyncio.get_running_loop().create_future()
        kept.set_result(socket)
        self._kept[url] = kept
        self._last_url, self._last_kept = url, kept
        return socket

    async def _open(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        subprotocols: Sequence[str] | None = None,
        auth: bool = True,
        timeout: float = DEFAULT_TIMEOUT_S,  # noqa: ASYNC109
        max_unread: int = DEFAULT_MAX_UNREAD,
    ) -> WebSocket:
        merged = dict(headers or {})
        if auth and not any(key.lower() == "authorization" for key in merged):
            merged.update(self.identity.auth_headers())
        socket = await connect(
            url,
            self.recorder,
            self.clock,
            headers=merged,
            subprotocols=subprotocols,
            timeout=timeout,
            origin=self.origin,
            on_close=self._closed,
            max_unread=max_unread,
        )
        self._open_sockets.add(socket)
        if self._on_connection is not None:
            self._on_connection(1)
        if socket.closed:
            # The target's close came with the upgrade's answer (a socket refused at
            # admission): it closed before it was taken for open here.
            self._closed(socket)
        return socket

    def _closed(self, socket: WebSocket) -> None:
        if socket in self._open_sockets:
            self._open_sockets.discard(socket)
            if self._on_connection is not None:
                self._on_connection(-1)

    @property
    def http(self) -> httpx.AsyncClient:
        """An HTTP client for this user (created on first use, closed with the session)."""
        if self._http is None:
            self._http = httpx.AsyncClient(
                headers=self.identity.auth_headers(),
                verify=_tls_context(),
                # This machine only: no proxy from the environment, no request elsewhere.
                trust_env=False,
                event_hooks={"request": [_require_loopback]},
            )
        return self._http

    async def aclose(self) -> None:
        """Close every connection and the HTTP client this user still holds.

        They close all at once, and each waits one close timeout
        (:data:`~squall.engine.client.CLOSE_TIMEOUT_S`) at most: a socket for the target's
        answer to its close frame, then it drops the connection; the HTTP client for its
        connections to close, then it is given up on (its connections go with it). So a
        target that never answers, or an HTTP close that hangs, holds this for one close
        timeout, however many sockets the user had. The first error a close raised is
        raised once all are done (a ``KeyboardInterrupt`` or ``SystemExit`` before any
        ``Exception``: see :func:`settle`).
        """
        closes = [socket.close() for socket in list(self._open_sockets)]
        http, self._http = self._http, None
        if http is not None:
            closes.append(_close_http(http))
        errors = await settle(closes)
        self._kept.clear()
        self._last_url = self._last_kept = None
        if errors:
            raise errors[0]


async def settle(closes: Iterable[Awaitable[None]]) -> list[BaseException]:
    """Await every close at once; once all are done, return what they raised.

    ``asyncio.gather(..., return_exceptions=True)`` alone does not wait for all of them: a
    close that raises ``KeyboardInterrupt`` or ``SystemExit`` leaves the event loop at once
    (asyncio re-raises those from the task that raised them), abandoning the other closes.
    The errors come in the order of ``closes``, those that are not an ``Exception`` first:
    they are the ones a caller must not swallow.
    """
    outcomes = await asyncio.gather(*(_caught(close) for close in closes), return_exceptions=True)
    errors = [outcome for outcome in outcomes if outcome is not None]
    return sorted(errors, key=lambda error: isinstance(error, Exception))


async def _caught(close: Awaitable[None]) -> BaseException | None:
    """Await ``close``; what it raised is returned, not raised (a cancellation aside)."""
    try:
        await close
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        return exc
    return None


async def _require_loopback(request: httpx.Request) -> None:
    """Refuse a request to another machine before it connects, as a WebSocket's is."""
    refusal = connection_refusal(str(request.url), "the request")
    if refusal is not None:
        raise httpx.ConnectError(refusal, request=request)


async def _close_http(client: httpx.AsyncClient) -> None:
    """Close ``client``, giving up after :data:`~squall.engine.client.CLOSE_TIMEOUT_S`.

    httpx's own close has no time limit; one stuck on a connection would hold the end of
    the run open with it.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await client.aclose()
