"""The HTTP endpoints: health, metrics, accounts, thread history, and ``/openapi.json``.

Every ``/v1`` route authenticates with the same bearer token as the socket
(401 without a valid one). A thread of another user answers 404, exactly like
one that does not exist.
"""

from __future__ import annotations

import logging
import os
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from squall.target import metrics, redis_pool
from squall.target.auth import Principal, Unauthorized, find_token, user_id_problem
from squall.target.edge import Edge
from squall.target.errors import InvalidField, TargetError, unavailable
from squall.target.ids import UserID
from squall.target.openapi import OPENAPI
from squall.target.protocol import MAX_BIGINT, WS_PATH, loads_strict, validate_thread_id

log = logging.getLogger(__name__)

MAX_PREFERENCES_BYTES = 4096
STATUS = {
    "not_found": 404,
    "invalid_field": 400,
    "bad_frame": 400,
    "content_too_large": 413,
    "frame_too_large": 413,
    "insufficient_credits": 402,
    "rate_limited": 429,
    "queue_full": 429,
    "shutting_down": 503,
    "unavailable": 503,
}

Handler = Callable[[Request, Edge, Principal], Awaitable[Response]]


def _error(request: Request, status: int, code: str, message: str) -> JSONResponse:
    """An error answer in the API's form, counted as ``errors_total{code}``."""
    edge: Edge = request.app.state.edge
    edge.counters.inc(metrics.series("errors_total", code=code))
    return JSONResponse({"code": code, "message": message}, status_code=status)


#: The code of a router error (no such path, a method the path does not take).
_ROUTER_CODES = {404: "not_found", 405: "method_not_allowed"}


async def router_error(request: Request, exc: Exception) -> Response:
    """The router's 404 and 405 in the API's error form (``{"code","message"}``), with the
    methods the path takes (``Allow``) for a 405."""
    assert isinstance(exc, HTTPException)
    code = _ROUTER_CODES.get(exc.status_code, "http_error")
    headers = exc.headers or {}
    if exc.status_code == 405:
        message = f"{request.method} {request.url.path}: allowed: {headers.get('Allow', '')}"
    else:
        message = f"{request.method} {request.url.path}: {exc.detail}"
    response = _error(request, exc.status_code, code, message)
    response.headers.update(headers)
    return response


async def internal_error(request: Request, exc: Exception) -> Response:
    """Any failure nobody expected: a 500 in the API's error form, counted as
    ``errors_total{code="internal"}``; the server logs the traceback after it."""
    return _error(
        request,
        500,
        TargetError.code,
        f"{request.method} {request.url.path}: internal error ({type(exc).__name__}); "
        "the platform's log has the traceback",
    )


def authenticated(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Resolve the bearer token (401 if bad) and map TargetErrors to their HTTP status."""

    async def endpoint(request: Request) -> Response:
        edge: Edge = request.app.state.edge
        credentials = find_token(request.headers.raw)
        try:
            principal = edge.auth.verify(credentials.token if credentials else None)
        except Unauthorized as exc:
            edge.counters.inc("auth_failures_total")
            return _error(request, 401, "unauthorized", str(exc))
        try:
            _check_path_encoding(request)
            return await handler(request, edge, principal)
        except TargetError as exc:
            return _error(request, STATUS.get(exc.code, 500), exc.code, exc.message)
        except Exception as exc:
            lost = unavailable(exc)
            if lost is None:
                raise
            log.warning("%s %s failed: %s", request.method, request.url.path, lost.message)
            return _error(request, STATUS[lost.code], lost.code, lost.message)

    return endpoint


def _check_path_encoding(request: Request) -> None:
    """Refuse a path whose percent-escapes are not UTF-8 (``%FF``, an encoded lone
    surrogate): the server decodes them to U+FFFD, so distinct bad ids would all name one
    account or thread, ``"\ufffd"``."""
    raw = request.scope.get("raw_path")
    if raw is None:
        return
    try:
        urllib.parse.unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidField(
            f"the path {raw.decode('ascii', 'replace')!r:.200} is not percent-encoded "
            "UTF-8; percent-encode the id's UTF-8 bytes"
        ) from None


async def _json_body(request: Request, max_bytes: int) -> Any:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        # Refused before it is read: a body past the limit is not buffered.
        raise InvalidField(f"body has {declared} bytes; the limit is {max_bytes}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise InvalidField(f"body has more than {max_bytes} bytes; the limit is {max_bytes}")
    try:
        return loads_strict(bytes(body))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidField(f"body is not valid UTF-8 JSON ({exc}); send a JSON object") from None


async def healthz(request: Request) -> Response:
    edge: Edge = request.app.state.edge
    if edge.shutting_down:
        return JSONResponse({"status": "shutting_down", "worker": os.getpid()}, status_code=503)
    return JSONResponse({"status": "ok", "worker": os.getpid()})


async def upgrade_required(request: Request) -> Response:
    """A plain HTTP request to the WebSocket endpoint: 426 saying how to upgrade."""
    response = _error(
        request,
        426,
        "upgrade_required",
        f"{request.method} {request.url.path} is the WebSocket endpoint: open a WebSocket "
        "(an upgrade request with Connection: Upgrade and Upgrade: websocket); "
        "docs/protocol.md describes its frames",
    )
    response.headers.update({"Upgrade": "websocket", "Connection": "Upgrade"})
    return response


async def metrics_endpoint(request: Request) -> Response:
    edge: Edge = request.app.state.edge
    gauges: dict[str, float] = {
        "sockets_open": float(len(edge.connections)),
        "hub_users": float(edge.hub.local_users()),
        "pubsub_resyncs_total": float(edge.hub.resyncs),
        "pubsub_republished_total": float(edge.hub.republished),
        "pubsub_republish_backlog": float(edge.hub.backlog),
    }
    if edge.started_at is not None:
        gauges["worker_start_time_seconds"] = edge.started_at
    try:
        counters = {
            **dict.fromkeys(metrics.UNLABELLED_COUNTERS, 0.0),
            **await edge.counters.totals(),
        }
        gauges["redis_up"] = 1.0
    except Exception as exc:
        if not redis_pool.connection_lost(exc):
            raise
        # The cluster-wide counters live in Redis: none rather than this worker's alone,
        # which would read as a counter reset.
        counters = {}
        gauges["redis_up"] = 0.0
    gauges.update({k: float(v) for k, v in (await edge.runtime.stats()).items()})
    text = metrics.render(counters, gauges, worker=os.getpid())
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4")


async def account_me(request: Request, edge: Edge, principal: Principal) -> Response:
    return JSONResponse(await edge.runtime.account(principal.user_id))


async def put_preferences(request: Request, edge: Edge, principal: Principal) -> Response:
    preferences = await _json_body(request, MAX_PREFERENCES_BYTES)
    if not isinstance(preferences, dict):
        raise InvalidField(
            f"preferences are a JSON {type(preferences).__name__}; expected an object"
        )
    await edge.runtime.set_preferences(principal.user_id, preferences)
    return Response(status_code=204)


async def grant_credits(request: Request, edge: Edge, principal: Principal) -> Response:
    if not principal.is_admin:
        return _error(request, 403, "forbidden", "granting credits needs a token with role 'admin'")
    body = await _json_body(request, MAX_PREFERENCES_BYTES)
    amount = body.get("amount") if isinstance(body, dict) else None
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= MAX_BIGINT:
        raise InvalidField(f"amount is {amount!r}; expected an integer from 1 to {MAX_BIGINT}")
    user_id = request.path_params["user_id"]
    problem = user_id_problem(user_id)
    if problem is not None:
        raise InvalidField(f"user id {user_id!r:.140} {problem}")
    user = UserID(user_id)
    return JSONResponse(await edge.runtime.add_credits(user, amount, principal.user_id))


async def thread_messages(request: Request, edge: Edge, principal: Principal) -> Response:
    thread = validate_thread_id(request.path_params["thread_id"])
    messages = await edge.runtime.messages(principal.user_id, thread)
    return JSONResponse({"thread_id": thread, "messages": messages})


async def thread_events(request: Request, edge: Edge, principal: Principal) -> Response:
    thread = validate_thread_id(request.path_params["thread_id"])
    after_seq = _int_param(request, "after_seq", 0, minimum=0)
    limit = _int_param(request, "limit", None, minimum=1)
    events = await edge.runtime.replay(principal.user_id, thread, after_seq, limit=limit)
    last_seq = int(events[-1]["seq"]) if events else after_seq
    return JSONResponse({"thread_id": thread, "events": events, "last_seq": last_seq})


def _int_param(request: Request, name: str, default: int | None, *, minimum: int) -> Any:
    """Query parameter ``name`` as an integer from ``minimum`` to the largest bigint, in
    ASCII digits only (``int()`` would also take "1_0", " 5", "+3" and other scripts')."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    # At most 19 digits, the largest bigint's: int() of thousands of digits raises.
    fits = raw.isascii() and raw.isdigit() and len(raw) <= len(str(MAX_BIGINT))
    value = int(raw) if fits else -1
    if not minimum <= value <= MAX_BIGINT:
        raise InvalidField(
            f"{name}={raw!r:.40}; expected an integer from {minimum} to {MAX_BIGINT} in digits"
        )
    return value


async def openapi(request: Request) -> Response:
    return JSONResponse(OPENAPI)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/metrics", metrics_endpoint, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
    Route(WS_PATH, upgrade_required, methods=["GET"]),
    Route("/v1/accounts/me", authenticated(account_me), methods=["GET"]),
    Route("/v1/accounts/me/preferences", authenticated(put_preferences), methods=["PUT"]),
    # :path: a user id may hold "/" (a token can carry it), sent as %2F.
    Route("/v1/accounts/{user_id:path}/credits", authenticated(grant_credits), methods=["POST"]),
    Route("/v1/threads/{thread_id}/messages", authenticated(thread_messages), methods=["GET"]),
    Route("/v1/threads/{thread_id}/events", authenticated(thread_events), methods=["GET"]),
]
