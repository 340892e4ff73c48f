"""A squall killed outright (SIGKILL) leaves no reference platform running behind it.

The platform squall starts gets SIGTERM when squall dies (its parent-death signal). The
servers it used die with squall too, so a graceful shutdown would wait for a database that
is gone (``SQUALL_DATABASE_OUTAGE_WAIT_S``, 30 s by default) while holding its port: a
platform whose starter is gone stops its workers at once instead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

pytestmark = pytest.mark.integration

#: squall's own path: embedded servers, a fresh platform database, the platform on them,
#: with the platform's default outage waits and grace.
_SQUALL = """
import json, time
from websockets.sync.client import connect
from squall.services import create_database, services
from squall.services.platform import start_platform
from squall.target.auth import mint_token
from squall.target.settings import Settings

with services(environ={}) as ep:
    database = create_database(ep.database_url, prefix="squall_platform")
    # Runs that stay running: their model answers only after a minute.
    platform = start_platform(
        database, ep.redis_url, workers=2, settings={"SQUALL_MODEL_TTFT_MS": "60000"}
    )
    token = mint_token(Settings(jwt_secret=platform.jwt_secret), "orphan")
    with connect(platform.ws_url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        assert json.loads(ws.recv(10))["type"] == "hello"
        for i in range(4):
            frame = {"type": "user_message", "thread_id": f"t{i}", "content": "hi",
                     "client_msg_id": f"m{i}"}
            ws.send(json.dumps(frame))
        acks = 0
        while acks < 4:
            message = json.loads(ws.recv(10))
            assert message["type"] != "error", message
            acks += message["type"] == "ack"
        print(platform.pid, platform.port, flush=True)
        time.sleep(120)
"""


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def _running(processes: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            continue
    return alive


def test_the_platform_of_a_squall_killed_outright_is_gone_within_seconds() -> None:
    squall = subprocess.Popen(
        [sys.executable, "-c", _SQUALL],
        stdout=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
    )
    platform: list[psutil.Process] = []
    try:
        assert squall.stdout is not None
        line = squall.stdout.readline()
        assert line, f"squall exited with {squall.wait(30)} before the platform served"
        pid, _port = (int(part) for part in line.split())
        platform = _tree(pid)
        assert len(platform) >= 3  # serve and its 2 workers
        os.kill(squall.pid, signal.SIGKILL)
        squall.wait(10)
        killed_at = time.monotonic()
        while _running(platform) and time.monotonic() - killed_at < 8:
            time.sleep(0.1)
        left = _running(platform)
        assert left == [], (
            f"{[p.pid for p in left]} of the platform still run "
            f"{time.monotonic() - killed_at:.1f} s after squall was killed"
        )
    finally:
        if squall.poll() is None:
            squall.kill()
            squall.wait(10)
        for process in _running(platform):  # a failure leaves no platform behind either
            process.kill()
