"""Auth, malformed frames, limits and the HTTP endpoints, over real sockets."""

from __future__ import annotations

import json
import re
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable
from urllib.parse import quote

import asyncpg
import httpx
import jwt
import pytest
from edge_client import (
    INTERNAL_ERRORS,
    Platform,
    counter_reaches,
    gauge,
    open_socket,
    recv,
    unique,
    user_message,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from squall.target.auth import Role, mint_token

pytestmark = pytest.mark.integration

MAX_FRAME = 8192
MAX_CONTENT = 2000
MAX_SOCKETS = 3


@pytest.fixture(scope="module")
def platform(platform_factory: Callable[..., Platform]) -> Platform:
    return platform_factory(
        workers=2,
        SQUALL_MAX_FRAME_BYTES=str(MAX_FRAME),
        SQUALL_MAX_CONTENT_CHARS=str(MAX_CONTENT),
        SQUALL_MAX_SOCKETS_PER_USER=str(MAX_SOCKETS),
    )


def bad_tokens(platform: Platform) -> dict[str, str | None]:
    settings = platform.settings
    return {
        "missing": None,
        "garbage": "not-a-jwt",
        "expired": mint_token(settings, "u1", ttl_s=-60),
        "wrong_audience": mint_token(settings.replace(jwt_audience="elsewhere"), "u1"),
        "wrong_issuer": mint_token(settings.replace(jwt_issuer="someone"), "u1"),
        "wrong_secret": mint_token(settings.replace(jwt_secret="x" * 40), "u1"),
        "bad_role": jwt.encode(
            {
                "sub": "u1",
                "role": "root",
                "iss": settings.jwt_issuer,
                "aud": settings.jwt_audience,
                "exp": 2**33,
            },
            settings.jwt_secret,
            algorithm="HS256",
        ),
    }


async def test_bad_tokens_get_401_and_4401(platform: Platform) -> None:
    async with httpx.AsyncClient(base_url=platform.http) as http:
        for name, token in bad_tokens(platform).items():
            headers = {} if token is None else {"Authorization": f"Bearer {token}"}
            reply = await http.get("/v1/accounts/me", headers=headers)
            assert reply.status_code == 401, name
            assert reply.json()["code"] == "unauthorized"
            async with connect(platform.ws_url, additional_headers=headers) as ws:
                with pytest.raises(ConnectionClosed) as closed:
                    await recv(ws)
                assert closed.value.rcvd is not None
                assert closed.value.rcvd.code == 4401, name


async def test_token_in_subprotocol_selects_bearer(platform: Platform) -> None:
    token = platform.token(unique("sub"))
    # As the client spelled it: the platform answered "bearer" to "Bearer", which a client
    # that checks the answer against its offer (RFC 6455 4.1) refused.
    for offered in ("bearer", "Bearer"):
        async with connect(platform.ws_url, subprotocols=[offered, token]) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == offered
            hello = await recv(ws)
            assert hello["type"] == "hello"


async def expect_error(ws: ClientConnection, frame: str | bytes, code: str) -> dict[str, object]:
    await ws.send(frame)
    error = await recv(ws)
    assert error["type"] == "error", error
    assert error["code"] == code, error
    assert isinstance(error["message"], str)
    assert error["message"]
    # The socket keeps working.
    await ws.send(json.dumps({"type": "ping", "id": code}))
    pong = await recv(ws)
    assert pong["type"] == "pong"
    assert pong["id"] == code
    return error


async def test_malformed_frames_get_errors_and_socket_survives(platform: Platform) -> None:
    ws, _ = await open_socket(platform, unique("bad"))
    await expect_error(ws, "{not json", "bad_frame")
    await expect_error(ws, "[1, 2]", "bad_frame")
    await expect_error(ws, json.dumps({"no": "type"}), "bad_frame")
    await expect_error(ws, json.dumps({"type": "dance"}), "unknown_type")
    await expect_error(ws, json.dumps({"type": "user_message", "content": "x"}), "invalid_field")
    error = await expect_error(
        ws,
        json.dumps(
            {"type": "user_message", "thread_id": "t 1", "content": "x", "client_msg_id": "c9"}
        ),
        "invalid_field",
    )
    assert error["client_msg_id"] == "c9"
    await expect_error(ws, json.dumps({"type": "resume", "thread_id": "t1"}), "invalid_field")
    await expect_error(ws, "x" * (MAX_FRAME + 1), "frame_too_large")
    error = await expect_error(
        ws, user_message("t-big", content="y" * (MAX_CONTENT + 1), msg="big"), "content_too_large"
    )
    assert error["client_msg_id"] == "big"
    assert error["thread_id"] == "t-big"
    # Binary frames are parsed like text ones.
    await expect_error(ws, b'{"type":"dance"}', "unknown_type")
    # Nesting deeper than the parser follows, and JSON the database cannot store.
    deep = MAX_FRAME // 2 - 1
    await expect_error(ws, "[" * deep + "]" * deep, "bad_frame")
    await expect_error(ws, '{"type":"ping","id":NaN}', "bad_frame")
    # A lone surrogate, which no frame sent back could hold: the socket was closed 1011.
    await expect_error(ws, '{"type":"ping","id":"\\ud800"}', "bad_frame")
    await expect_error(
        ws,
        '{"type":"user_message","thread_id":"t","content":"c","client_msg_id":"\\udc00"}',
        "bad_frame",
    )
    await ws.send(json.dumps({"type": "ping"}))
    assert (await recv(ws))["id"] is None
    await ws.close()


async def test_socket_cap_per_user(platform: Platform) -> None:
    user = unique("many")
    sockets = [(await open_socket(platform, user))[0] for _ in range(MAX_SOCKETS)]
    async with connect(platform.ws_url, additional_headers=platform.headers(user)) as extra:
        error = await recv(extra)
        assert error["code"] == "too_many_sockets"
        with pytest.raises(ConnectionClosed) as closed:
            await recv(extra)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008
    await sockets[0].close()
    # The slot is released on close.
    again, hello = await open_socket(platform, user)
    assert hello["type"] == "hello"
    for ws in [again, *sockets[1:]]:
        await ws.close()


async def test_a_refused_client_that_is_gone_is_no_error_of_the_platforms(
    platform: Platform,
) -> None:
    # Sending it the refusal failed: each was an "Exception in ASGI application" traceback
    # and an errors_total{code="internal"}, which any client could so inflate.
    user = unique("gone")
    sockets = [(await open_socket(platform, user))[0] for _ in range(MAX_SOCKETS)]
    refused = 'squall_target_errors_total{code="too_many_sockets"}'
    async with httpx.AsyncClient(base_url=platform.http) as http:
        text = (await http.get("/metrics")).text
    before = {s: gauge(text, s) if s in text else 0.0 for s in (refused, INTERNAL_ERRORS)}
    request = (
        "GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {platform.token(user)}\r\n\r\n"
    ).encode()
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", platform.port)) as raw:
            raw.sendall(request)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert await counter_reaches(platform, refused, before[refused] + 5)
    async with httpx.AsyncClient(base_url=platform.http) as http:
        text = (await http.get("/metrics")).text
    assert (gauge(text, INTERNAL_ERRORS) if INTERNAL_ERRORS in text else 0.0) == before[
        INTERNAL_ERRORS
    ]
    for ws in sockets:
        await ws.close()


async def test_admin_credits(platform: Platform) -> None:
    target = unique("grantee")
    async with httpx.AsyncClient(base_url=platform.http) as http:
        before = (await http.get("/v1/accounts/me", headers=platform.headers(target))).json()
        assert before["user_id"] == target
        path = f"/v1/accounts/{target}/credits"
        denied = await http.post(path, json={"amount": 5}, headers=platform.headers(target))
        assert denied.status_code == 403
        admin = platform.headers(unique("root"), Role.ADMIN)
        for bad in ({"amount": 0}, {"amount": "5"}, {"amount": True}, [1], {"amount": 2**63}):
            reply = await http.post(path, json=bad, headers=admin)
            assert reply.status_code == 400, bad
        # More than the balance can hold, and user ids no token could carry: refused, not 500.
        overflow = await http.post(path, json={"amount": 2**63 - 1}, headers=admin)
        assert overflow.status_code == 400
        assert "would exceed the largest one it can hold" in overflow.json()["message"]
        # "%FF", "%C3" and an encoded lone surrogate are not UTF-8: the server decoded them
        # to U+FFFD, and credited one account "\ufffd" for all three.
        for user in ("u" * 129, "a%00b", "%FF", "%C3", "%ED%A0%80"):
            reply = await http.post(
                f"/v1/accounts/{user}/credits", json={"amount": 1}, headers=admin
            )
            assert reply.status_code == 400, user
            assert reply.json()["code"] == "invalid_field"
        granted = await http.post(path, json={"amount": 5}, headers=admin)
        assert granted.status_code == 200
        after = (await http.get("/v1/accounts/me", headers=platform.headers(target))).json()
    assert after["balance"] == before["balance"] + 5
    # A user id a token can carry, "/" included (sent as %2F): the route did not match it.
    slashed = unique("team") + "/alice"
    async with httpx.AsyncClient(base_url=platform.http) as http:
        path = f"/v1/accounts/{quote(slashed, safe='')}/credits"
        granted = await http.post(path, json={"amount": 5}, headers=admin)
        assert granted.status_code == 200, granted.text
        account = (await http.get("/v1/accounts/me", headers=platform.headers(slashed))).json()
    assert (account["user_id"], account["balance"]) == (slashed, before["balance"] + 5)
    # HTTP error answers are counted by code, as error frames are.
    assert await counter_reaches(platform, 'squall_target_errors_total{code="forbidden"}', 1)


async def _chunks(count: int, size: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield b"x" * size


async def test_http_endpoints(platform: Platform) -> None:
    user = unique("http")
    async with httpx.AsyncClient(base_url=platform.http) as http:
        health = await http.get("/healthz")
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        assert isinstance(health.json()["worker"], int)
        spec = (await http.get("/openapi.json")).json()
        assert set(spec["paths"]) >= {
            "/v1/ws",
            "/healthz",
            "/metrics",
            "/v1/accounts/me",
            "/v1/accounts/me/preferences",
            "/v1/accounts/{user_id}/credits",
            "/v1/threads/{thread_id}/messages",
            "/v1/threads/{thread_id}/events",
        }
        prefs = "/v1/accounts/me/preferences"
        ok = await http.put(prefs, json={"tone": "terse"}, headers=platform.headers(user))
        assert ok.status_code == 204
        too_big = await http.put(prefs, json={"x": "y" * 5000}, headers=platform.headers(user))
        assert too_big.status_code == 400
        # About 4,000 bytes of UTF-8 (12,000 as ASCII escapes): within the limit as sent.
        accented = json.dumps({"x": "é" * 1994}, ensure_ascii=False).encode()
        assert len(accented) <= 4096
        fits = await http.put(prefs, content=accented, headers=platform.headers(user))
        assert fits.status_code == 204, fits.text
        chunked = await http.put(prefs, content=_chunks(10, 1000), headers=platform.headers(user))
        assert chunked.status_code == 400  # no Content-Length: counted as it streams in
        assert "more than 4096 bytes" in chunked.json()["message"]
        # Within the limit as sent, though longer re-encoded (1e5 is 100000.0): was refused.
        numbers = ('{"a":[' + ",".join(["1e5"] * 600) + "]}").encode()
        assert len(numbers) <= 4096
        taken = await http.put(prefs, content=numbers, headers=platform.headers(user))
        assert taken.status_code == 204, taken.text
        not_object = await http.put(prefs, json=[1], headers=platform.headers(user))
        assert not_object.status_code == 400
        # JSON that PostgreSQL's jsonb or a strict parser cannot take: refused, not 500.
        for body in (
            b'{"x": NaN}',
            b'{"x": 1e400}',
            b'{"x": "a\\u0000b"}',
            b'{"x": "\\ud800"}',  # a lone surrogate: was a 500
            '{"x": 1}'.encode("utf-16"),  # JSON, but not UTF-8: was taken
        ):
            reply = await http.put(prefs, content=body, headers=platform.headers(user))
            assert reply.status_code == 400, body
            assert reply.json()["code"] == "invalid_field"
        beyond = await http.get(
            "/v1/threads/nope/events", params={"after_seq": 2**63}, headers=platform.headers(user)
        )
        assert beyond.status_code == 400
        # Digits only, from 0 (after_seq) and 1 (limit): int() took "1_0", " 5" and "+3".
        # Thousands of digits too: int() of them raised, a 500.
        for params in (
            {"limit": "1_0"},
            {"limit": "0"},
            {"after_seq": "+3"},
            {"limit": " 5"},
            {"after_seq": "9" * 5000},
        ):
            odd = await http.get(
                "/v1/threads/nope/events", params=params, headers=platform.headers(user)
            )
            assert odd.status_code == 400, params
            assert "in digits" in odd.json()["message"]
        # The router's own errors in the API's form.
        wrong_method = await http.post("/v1/accounts/me", headers=platform.headers(user))
        assert wrong_method.status_code == 405
        assert wrong_method.json()["code"] == "method_not_allowed"
        # Starlette lists the methods from a set: in any order.
        assert set(wrong_method.headers["allow"].split(", ")) == {"GET", "HEAD"}
        nowhere = await http.get("/v1/nope", headers=platform.headers(user))
        assert (nowhere.status_code, nowhere.json()["code"]) == (404, "not_found")
        missing = await http.get("/v1/threads/nope/messages", headers=platform.headers(user))
        assert missing.status_code == 404
        # The socket endpoint asked for without an upgrade says how to upgrade (was a 404).
        plain = await http.get("/v1/ws", headers=platform.headers(user))
        assert (plain.status_code, plain.json()["code"]) == (426, "upgrade_required")
        assert plain.headers["upgrade"] == "websocket"
        assert "open a WebSocket" in plain.json()["message"]
        posted = await http.post("/v1/ws")
        assert posted.status_code == 405
        assert set(posted.headers["allow"].split(", ")) == {"GET", "HEAD"}
        # A trailing slash is another path, not a redirect.
        for path in ("/healthz/", "/v1/accounts/me/"):
            slash = await http.get(path, headers=platform.headers(user))
            assert (slash.status_code, slash.json()["code"]) == (404, "not_found"), path
        metrics = await http.get("/metrics")
    assert metrics.status_code == 200
    assert "# TYPE squall_target_" in metrics.text
    # Every family the platform shows is described (docs/protocol.md lists the same texts).
    typed = re.findall(r"^# TYPE squall_target_(\w+) ", metrics.text, re.MULTILINE)
    assert re.findall(r"^# HELP squall_target_(\w+) ", metrics.text, re.MULTILINE) == typed
    assert "squall_target_runs_running{worker=" in metrics.text
    started = gauge(metrics.text, "squall_target_worker_start_time_seconds")
    assert time.time() - 600 < started <= time.time()


async def test_unexpected_http_failure_is_a_counted_json_500(platform: Platform) -> None:
    """A failure the platform does not expect (here its accounts table gone) answers 500 in
    the API's error form and counts as ``errors_total{code="internal"}``."""
    user = unique("broken")
    conn = await asyncpg.connect(platform.settings.database_url)
    try:
        await conn.execute("ALTER TABLE accounts RENAME TO accounts_away")
        try:
            async with httpx.AsyncClient() as http:
                answer = await http.get(
                    f"{platform.http}/v1/accounts/me", headers=platform.headers(user)
                )
        finally:
            await conn.execute("ALTER TABLE accounts_away RENAME TO accounts")
    finally:
        await conn.close()
    assert answer.status_code == 500
    body = answer.json()
    assert body["code"] == "internal"
    assert body["message"].startswith("GET /v1/accounts/me: internal error (")
    assert await counter_reaches(platform, INTERNAL_ERRORS, 1) >= 1
