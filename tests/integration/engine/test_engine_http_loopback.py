"""HTTP from squall stays on this machine: a proxy named by the environment is not used, a
request to another machine is refused before it connects, and the platform's health check
follows no redirect."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from squall.engine import Session
from squall.engine.identity import AnonymousIdentities
from squall.metrics.recorder import Recorder
from squall.services.platform import _healthy

pytestmark = pytest.mark.integration


class _Server:
    """A loopback HTTP server that records each request's path and answers with ``answer``."""

    def __init__(self, answer: tuple[int, dict[str, str], bytes]) -> None:
        self.paths: list[str] = []
        status, headers, body = answer
        paths = self.paths

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                paths.append(self.path)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers() -> Iterator[tuple[_Server, _Server]]:
    target = _Server((200, {}, b'{"status": "ok"}'))
    proxy = _Server((502, {}, b"proxied"))
    try:
        yield target, proxy
    finally:
        target.close()
        proxy.close()


def _session() -> Session:
    return Session(AnonymousIdentities()(0), Recorder(), time.monotonic, {})


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
async def test_session_http_ignores_a_proxy_the_environment_names(
    servers: tuple[_Server, _Server], monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    # A proxy would carry the user's bearer token to wherever it points.
    target, proxy = servers
    monkeypatch.setenv(variable, proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    session = _session()
    try:
        response = await session.http.get(f"{target.url}/hello")
    finally:
        await session.aclose()
    assert response.status_code == 200
    assert target.paths == ["/hello"]
    assert proxy.paths == []


async def test_session_http_refuses_another_machine_before_connecting() -> None:
    session = _session()
    try:
        async with asyncio.timeout(5):
            with pytest.raises(httpx.ConnectError) as caught:
                await session.http.get("http://192.0.2.2:47150/anything")
    finally:
        await session.aclose()
    assert str(caught.value) == (
        "http://192.0.2.2:47150/anything: host 192.0.2.2 is not a loopback address; squall "
        "only connects to this machine (127.0.0.0/8, ::1): point the request at a service on "
        "127.0.0.1 or localhost"
    )


def test_the_health_check_ignores_a_proxy_the_environment_names(
    servers: tuple[_Server, _Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    target, proxy = servers
    monkeypatch.setenv("http_proxy", proxy.url)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert _healthy(target.url)
    assert target.paths == ["/healthz"]
    assert proxy.paths == []


def test_the_health_check_follows_no_redirect(servers: tuple[_Server, _Server]) -> None:
    target, _proxy = servers
    redirect = _Server((302, {"Location": f"{target.url}/healthz"}, b""))
    try:
        assert not _healthy(redirect.url)
    finally:
        redirect.close()
    assert redirect.paths == ["/healthz"]
    assert target.paths == []
