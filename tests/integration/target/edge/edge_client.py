"""Client side of the edge tests: ``squall target serve`` as a child process, and helpers.

Each server gets a fresh database and its own Redis prefix; the model is made
instant so runs finish in milliseconds. Clients are the ``websockets`` library
and ``httpx``, over loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from fresh_databases import fresh_database
from squall.services import Endpoints, ManagedProcess, spawn
from squall.services.embedded import EmbeddedValkey, free_port, port_open
from squall.target.auth import Role, mint_token
from squall.target.protocol import READY_LINE
from squall.target.settings import Settings

SQUALL = str(Path(sys.executable).with_name("squall"))
READY_TIMEOUT_S = 60.0
FAST_MODEL = {
    "SQUALL_MODEL_TTFT_MS": "0",
    "SQUALL_MODEL_TOKENS_PER_SECOND": "100000",
    "SQUALL_MODEL_ANSWER_TOKENS": "24",
    "SQUALL_STREAM_CHUNK_TOKENS": "8",
}


def time_scale() -> float:
    return float(os.environ.get("SQUALL_TEST_TIME_SCALE", "1"))


@dataclass
class Platform:
    process: ManagedProcess
    port: int
    settings: Settings
    ready_line: str

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/ws"

    def token(self, user: str, role: Role = Role.USER, ttl_s: float = 600.0) -> str:
        return mint_token(self.settings, user, role=role, ttl_s=ttl_s)

    def headers(self, user: str, role: Role = Role.USER) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user, role)}"}


def start_platform(
    database: str, redis_url: str, log_dir: Path, workers: int = 2, **env: str
) -> Platform:
    """Start ``squall target serve`` on ``database`` and ``redis_url``, on a free port."""
    port = free_port()
    settings = Settings.from_env(
        {
            "SQUALL_DATABASE_URL": database,
            "SQUALL_REDIS_URL": redis_url,
            "SQUALL_REDIS_PREFIX": f"edge-{uuid.uuid4().hex[:10]}",
            "SQUALL_JWT_SECRET": f"edge-test-secret-{uuid.uuid4().hex}",
            **FAST_MODEL,
            **env,
        }
    )
    child_env = {**os.environ, **settings.to_env()}
    process = spawn(
        "squall-target",
        [SQUALL, "target", "serve", "--workers", str(workers), "--port", str(port)],
        log_path=log_dir / f"target-{port}.log",
        env=child_env,
    )
    deadline = time.monotonic() + READY_TIMEOUT_S * time_scale()
    while time.monotonic() < deadline:
        for line in process.log_path.read_text(errors="replace").splitlines():
            if line.startswith(READY_LINE):
                return Platform(process, port, settings, line)
        if not process.running():
            break
        time.sleep(0.05)
    process.stop()
    raise RuntimeError(f"platform did not become ready:\n{process.log_tail(40)}")


@contextlib.contextmanager
def running_platform(
    endpoints: Endpoints, log_dir: Path, workers: int = 2, **env: str
) -> Iterator[Platform]:
    """:func:`start_platform` on a fresh database of ``endpoints``' PostgreSQL and its
    Redis, stopped and the database dropped on exit."""
    with fresh_database(endpoints, "squall_edge") as database:
        platform = start_platform(database, endpoints.redis_url, log_dir, workers, **env)
        try:
            yield platform
        finally:
            platform.process.stop(timeout=20)


@contextlib.contextmanager
def running_platform_on_redis(
    redis: EmbeddedValkey, endpoints: Endpoints, log_dir: Path, workers: int = 2, **env: str
) -> Iterator[Platform]:
    """:func:`running_platform` on ``redis``, a Redis of the test's own (one it may stop,
    pause or restart), and ``endpoints``' PostgreSQL."""
    own = dataclasses.replace(endpoints, redis_url=redis.url)
    with running_platform(own, log_dir, workers, **env) as platform:
        yield platform


# --- client helpers ----------------------------------------------------------------------

TIMEOUT_S = 15.0


async def recv(ws: ClientConnection, within: float = TIMEOUT_S) -> dict[str, Any]:
    raw = await asyncio.wait_for(ws.recv(), within * time_scale())
    frame = json.loads(raw)
    assert isinstance(frame, dict)
    return frame


async def recv_until(
    ws: ClientConnection, done: Callable[[dict[str, Any]], bool], within: float = TIMEOUT_S
) -> list[dict[str, Any]]:
    """Frames up to and including the first one for which ``done`` holds."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(within * time_scale()):
        while True:
            frame = json.loads(await ws.recv())
            frames.append(frame)
            if done(frame):
                return frames


async def open_socket(
    platform: Platform, user: str, role: Role = Role.USER
) -> tuple[ClientConnection, dict[str, Any]]:
    """A socket of ``user`` and its ``hello`` frame."""
    ws = await connect(
        platform.ws_url,
        additional_headers={"Authorization": f"Bearer {platform.token(user, role)}"},
        max_size=None,
    )
    hello = await recv(ws)
    assert hello["type"] == "hello", hello
    return ws, hello


async def close_code(ws: ClientConnection, within: float = TIMEOUT_S) -> int:
    """Read until the server closes ``ws`` (within ``within`` seconds); its close code."""
    with pytest.raises(ConnectionClosed) as closed:  # noqa: PT012 - the loop is the act
        async with asyncio.timeout(within * time_scale()):
            while True:
                await ws.recv()
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


def completed(run_id: str | None = None) -> Callable[[dict[str, Any]], bool]:
    def done(frame: dict[str, Any]) -> bool:
        return frame.get("type") == "agent_completed" and (
            run_id is None or frame.get("run_id") == run_id
        )

    return done


def user_message(thread: str, content: str = "hello there", msg: str | None = None) -> str:
    return json.dumps(
        {
            "type": "user_message",
            "thread_id": thread,
            "content": content,
            "client_msg_id": msg or uuid.uuid4().hex,
        }
    )


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def gauge(text: str, name: str) -> float:
    """The value of the one sample of ``name`` in Prometheus ``text``."""
    (line,) = [
        x for x in text.splitlines() if x.startswith(f"{name}{{") or x.startswith(name + " ")
    ]
    return float(line.rsplit(" ", 1)[1])


def wait_closed(port: int) -> None:
    """Block until nothing listens on 127.0.0.1:``port`` (a server going down), or 15 s."""
    deadline = time.monotonic() + 15 * time_scale()
    while port_open("127.0.0.1", port) and time.monotonic() < deadline:
        time.sleep(0.02)


#: The counter of failures the platform did not expect (an HTTP 500, a socket closed 1011).
INTERNAL_ERRORS = 'squall_target_errors_total{code="internal"}'


async def counter_reaches(platform: Platform, series: str, at_least: float) -> float:
    """Poll ``/metrics`` until the counter sample ``series`` (name and labels, as the text
    shows them; a worker's own series may leave out its ``worker`` label) reaches
    ``at_least`` (counters are flushed every second); its last value."""
    value = 0.0
    deadline = time.monotonic() + 10 * time_scale()
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            text = (await http.get(f"{platform.http}/metrics")).text
            samples = [
                x
                for x in text.splitlines()
                if x.startswith(series + " ") or x.startswith(series + '{worker="')
            ]
            value = float(samples[0].rsplit(" ", 1)[1]) if samples else 0.0
            if value >= at_least:
                break
            await asyncio.sleep(0.2)
    return value
