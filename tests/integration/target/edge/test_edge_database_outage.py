"""PostgreSQL down for a few seconds: requests get ``unavailable``, then work again.

A message sent while the database is down cannot be stored: the client gets the
``unavailable`` error (retry; read the thread first) instead of ``internal``, an HTTP request
a 503 with the same code, and the platform's log says so in one line each, without a
traceback; ``/metrics`` answers with ``database_up`` 0. A replay asked for meanwhile waits
for the database and then completes. Once the server is back the same socket's next message
is accepted and runs. A message sent during an outage shorter than
``SQUALL_SUBMIT_OUTAGE_WAIT_S`` waits for the database and is acked.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from edge_client import (
    Platform,
    completed,
    gauge,
    open_socket,
    recv,
    recv_until,
    running_platform,
    time_scale,
    unique,
    user_message,
    wait_closed,
)

from squall.services import Endpoints
from squall.services.embedded import EmbeddedPostgres

pytestmark = pytest.mark.integration

#: A submit wait longer than the outage of the test that sets it (4 s).
SUBMIT_WAIT_S = 30 * time_scale()


@pytest.fixture
def platform(
    request: pytest.FixtureRequest,
    endpoints: Endpoints,
    postgres: EmbeddedPostgres,
    tmp_path: Path,
) -> Iterator[Platform]:
    """One worker on a PostgreSQL of its own; ``SQUALL_SUBMIT_OUTAGE_WAIT_S`` from the
    test's indirect parameter, else 0.5 s: a submit gives up well before the database,
    down for 3 s, is back."""
    own = dataclasses.replace(endpoints, database_url=postgres.url)
    wait_s = str(getattr(request, "param", 0.5))
    with running_platform(own, tmp_path, workers=1, SQUALL_SUBMIT_OUTAGE_WAIT_S=wait_s) as platform:
        yield platform


async def test_requests_while_postgres_is_down_are_refused_as_unavailable(
    platform: Platform, postgres: EmbeddedPostgres
) -> None:
    user, thread = unique("pg-down"), unique("t")
    ws, _ = await open_socket(platform, user)
    headers = {"Authorization": f"Bearer {platform.token(user)}"}
    try:
        await ws.send(user_message(thread, msg="before"))
        before = [f for f in await recv_until(ws, completed()) if "seq" in f]
        fresh, _ = await open_socket(platform, user)  # has delivered nothing of the thread
        restart = asyncio.create_task(postgres.restart(down_s=3 * time_scale()))
        await asyncio.to_thread(wait_closed, postgres.port)

        await ws.send(user_message(thread, msg="during"))
        error = await recv(ws)
        assert error["type"] == "error", error
        assert (error["code"], error["client_msg_id"]) == ("unavailable", "during")
        assert error["message"].startswith("PostgreSQL is unreachable ("), error
        assert "read the thread before sending it again" in error["message"]
        async with httpx.AsyncClient() as http:
            response = await http.get(f"{platform.http}/v1/accounts/me", headers=headers)
            assert response.status_code == 503
            assert response.json()["code"] == "unavailable"
            metrics = await http.get(f"{platform.http}/metrics")
        # Metrics answer, and say the database is down instead of a wrong queue length.
        assert metrics.status_code == 200
        assert gauge(metrics.text, "squall_target_database_up") == 0
        assert gauge(metrics.text, "squall_target_redis_up") == 1
        assert "squall_target_runs_queued" not in metrics.text

        # A replay asked for while the database is down waits for it, then completes.
        await fresh.send(json.dumps({"type": "resume", "thread_id": thread, "after_seq": 0}))
        await restart
        replayed = await recv_until(fresh, lambda f: f["type"] == "resume_done", within=30)
        await fresh.close()
        assert replayed[:-1] == before
        assert replayed[-1]["last_seq"] == before[-1]["seq"]

        await ws.send(user_message(thread, msg="after"))
        ack = await recv(ws)
        assert (ack["type"], ack["client_msg_id"]) == ("ack", "after"), ack
        await recv_until(ws, completed(ack["run_id"]))
    finally:
        await ws.close()
    log = platform.process.log_path.read_text()
    assert f"submit failed for user {user}: PostgreSQL is unreachable" in log
    assert "GET /v1/accounts/me failed: PostgreSQL is unreachable" in log
    assert "Traceback" not in log, log
    # Each line says when, how grave and which worker: the workers' lines interleave.
    line = next(line for line in log.splitlines() if "GET /v1/accounts/me failed" in line)
    assert re.match(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING worker \d+ squall\.target\.", line
    )


@pytest.mark.parametrize("platform", [SUBMIT_WAIT_S], indirect=True)
async def test_a_message_sent_during_an_outage_shorter_than_the_submit_wait_is_acked(
    platform: Platform, postgres: EmbeddedPostgres
) -> None:
    user, thread = unique("pg-wait"), unique("t")
    ws, _ = await open_socket(platform, user)
    try:
        # Down for longer than the default wait (2 s), which would answer ``unavailable``.
        restart = asyncio.create_task(postgres.restart(down_s=4 * time_scale()))
        await asyncio.to_thread(wait_closed, postgres.port)
        await ws.send(user_message(thread, msg="during"))
        ack = await recv(ws, within=SUBMIT_WAIT_S)
        assert (ack["type"], ack["client_msg_id"]) == ("ack", "during"), ack
        await restart
        await recv_until(ws, completed(ack["run_id"]))
    finally:
        await ws.close()
    log = platform.process.log_path.read_text()
    assert f"submit failed for user {user}" not in log
    assert "Traceback" not in log, log
