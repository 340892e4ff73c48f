"""A worker killed outright is replaced, and the platform keeps serving on its port.

``squall target serve`` supervises its workers: once all serve, one that dies (SIGKILL,
the kernel's OOM killer, a crash) is replaced by a new one, and the log says which and how
it ended. Its sockets are gone (the client reconnects); the other workers never stopped. A
replacement that finds PostgreSQL or Redis down waits for it instead of dying.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from edge_client import (
    Platform,
    completed,
    gauge,
    open_socket,
    recv_until,
    running_platform,
    running_platform_on_redis,
    time_scale,
    unique,
    user_message,
    wait_closed,
)
from websockets.exceptions import ConnectionClosed

from squall.services import Endpoints
from squall.services.embedded import EmbeddedPostgres, EmbeddedValkey

pytestmark = pytest.mark.integration


@pytest.fixture
def platform(platform_factory: Callable[..., Platform]) -> Platform:
    return platform_factory(workers=2)


def workers(platform: Platform) -> set[int]:
    """The platform's live worker processes (spawned children of ``serve``)."""
    found = set()
    for child in psutil.Process(platform.process.pid).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and any(
                "multiprocessing.spawn" in part for part in child.cmdline()
            ):
                found.add(child.pid)
        except psutil.NoSuchProcess:
            continue
    return found


def log_text(platform: Platform) -> str:
    return " ".join(platform.process.log_path.read_text().split())


async def wait_for_log(platform: Platform, line: str) -> str:
    """The platform's log (whitespace folded) once it holds ``line``."""
    deadline = time.monotonic() + 30 * time_scale()
    while line not in (log := log_text(platform)):
        assert platform.process.running(), platform.process.log_tail(20)
        assert time.monotonic() < deadline, platform.process.log_tail(20)
        await asyncio.sleep(0.1)
    return log


async def wait_for_workers(platform: Platform, wanted: Callable[[set[int]], bool]) -> set[int]:
    deadline = time.monotonic() + 30 * time_scale()
    while not wanted(found := workers(platform)):
        assert time.monotonic() < deadline, f"workers now {found}\n{platform.process.log_tail(20)}"
        await asyncio.sleep(0.1)
    return found


async def wait_for_starts(platform: Platform, count: int) -> None:
    """Until ``squall_target_worker_starts_total`` reads ``count`` (each worker flushes its
    counters every second)."""
    deadline = time.monotonic() + 10 * time_scale()
    async with httpx.AsyncClient() as http:
        while True:
            text = (await http.get(f"{platform.http}/metrics")).text
            found = gauge(text, "squall_target_worker_starts_total")
            if found == count:
                return
            assert found < count, text
            assert time.monotonic() < deadline, text
            await asyncio.sleep(0.2)


async def test_a_killed_worker_is_replaced_and_the_new_one_serves(platform: Platform) -> None:
    user, thread = unique("crash"), unique("t")
    before = await wait_for_workers(platform, lambda found: len(found) == 2)
    ws, hello = await open_socket(platform, user)
    victim = int(hello["worker"])
    assert victim in before

    os.kill(victim, signal.SIGKILL)
    with pytest.raises(ConnectionClosed):  # the socket died with its worker
        await asyncio.wait_for(ws.recv(), 10 * time_scale())
    after = await wait_for_workers(platform, lambda found: len(found) == 2 and victim not in found)
    (new,) = after - before
    log = await wait_for_log(platform, f"squall target: new worker pid {new} serves")
    assert f"squall target: worker pid {victim} was killed by SIGKILL; starting a new one" in log
    # /metrics, whichever worker answers, counts the starts: two workers and the new one.
    await wait_for_starts(platform, 3)

    # Every socket the platform takes now is served by a live worker, the new one included.
    served: set[int] = set()
    for _ in range(40):
        ws, hello = await open_socket(platform, user)
        served.add(int(hello["worker"]))
        if new in served:
            break
        await ws.close()
    assert served <= after
    assert new in served, f"40 sockets all landed on {served}"
    await ws.send(user_message(thread, msg="after the crash"))
    frames = await recv_until(ws, completed())
    assert frames[-1]["status"] == "completed"
    await ws.close()


async def test_a_worker_stopped_alone_closes_its_sockets_with_1001_and_is_replaced(
    platform: Platform,
) -> None:
    user = unique("stop")
    before = await wait_for_workers(platform, lambda found: len(found) == 2)
    ws, hello = await open_socket(platform, user)
    victim = int(hello["worker"])

    os.kill(victim, signal.SIGTERM)  # one worker of a rolling restart
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 10 * time_scale())
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1001
    after = await wait_for_workers(platform, lambda found: len(found) == 2 and victim not in found)
    (new,) = after - before
    log = await wait_for_log(platform, f"squall target: new worker pid {new} serves")
    assert f"squall target: worker pid {victim} stopped on SIGTERM; starting a new one" in log


@pytest.fixture
def platform_on_own_postgres(
    endpoints: Endpoints, postgres: EmbeddedPostgres, tmp_path: Path
) -> Iterator[Platform]:
    own = dataclasses.replace(endpoints, database_url=postgres.url)
    with running_platform(own, tmp_path, workers=2) as platform:
        yield platform


async def test_a_worker_replaced_while_postgres_is_down_waits_for_it(
    platform_on_own_postgres: Platform, postgres: EmbeddedPostgres
) -> None:
    new, log = await replace_a_worker_while_down(platform_on_own_postgres, postgres)
    assert "worker start waits for the database" in log
    await complete_a_run_on(platform_on_own_postgres, new, "pg-replaced")


async def replace_a_worker_while_down(
    platform: Platform, server: EmbeddedPostgres | EmbeddedValkey
) -> tuple[int, str]:
    """Kill a worker while ``server`` restarts; the replacement's pid and the platform's log
    once it serves, having started only once (it waited instead of dying)."""
    before = await wait_for_workers(platform, lambda found: len(found) == 2)
    victim = min(before)
    # The replacement needs a second or so to start (several on a busy host): the server is
    # down by then, and still down when it first tries to connect.
    restart = asyncio.create_task(server.restart(down_s=8 * time_scale()))
    await asyncio.to_thread(wait_closed, server.port)
    os.kill(victim, signal.SIGKILL)
    after = await wait_for_workers(platform, lambda found: len(found) == 2 and victim not in found)
    (new,) = after - before
    await restart
    log = await wait_for_log(platform, f"squall target: new worker pid {new} serves")
    assert log.count("starting a new one") == 1, log  # the replacement never died
    return new, log


async def complete_a_run_on(platform: Platform, worker: int, name: str) -> None:
    """Open sockets until one lands on ``worker``, and complete a run there."""
    user, thread = unique(name), unique("t")
    for _ in range(40):
        ws, hello = await open_socket(platform, user)
        if int(hello["worker"]) == worker:
            break
        await ws.close()
    assert int(hello["worker"]) == worker
    await ws.send(user_message(thread, msg="on the replacement"))
    frames = await recv_until(ws, completed())
    assert frames[-1]["status"] == "completed"
    await ws.close()


@pytest.fixture
def platform_on_own_redis(
    endpoints: Endpoints,
    redis_server: EmbeddedValkey,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Platform]:
    """A platform on the test's Redis (and the session's PostgreSQL); a test parametrizes
    it indirectly with more of its environment."""
    env = getattr(request, "param", {})
    with running_platform_on_redis(redis_server, endpoints, tmp_path, 2, **env) as platform:
        yield platform


async def test_a_worker_replaced_while_redis_is_down_waits_for_it(
    platform_on_own_redis: Platform, redis_server: EmbeddedValkey
) -> None:
    new, log = await replace_a_worker_while_down(platform_on_own_redis, redis_server)
    assert "worker start waits for Redis" in log
    assert "worker start: Redis is back" in log
    await complete_a_run_on(platform_on_own_redis, new, "redis-replaced")


# Not waiting for Redis at start: each replacement dies until Redis is back.
@pytest.mark.parametrize(
    "platform_on_own_redis", [{"SQUALL_REDIS_OUTAGE_WAIT_S": "0"}], indirect=True
)
async def test_replacements_that_die_while_redis_is_down_back_off_until_one_serves(
    platform_on_own_redis: Platform, redis_server: EmbeddedValkey
) -> None:
    platform = platform_on_own_redis
    before = await wait_for_workers(platform, lambda found: len(found) == 2)
    restart = asyncio.create_task(redis_server.restart(down_s=6 * time_scale()))
    await asyncio.to_thread(wait_closed, redis_server.port)
    os.kill(min(before), signal.SIGKILL)
    await restart
    # The first replacement cannot reach Redis and dies; the next waits before starting.
    await wait_for_log(platform, "starting a new one in 0.5 s (the last one died before serving)")
    log = await wait_for_log(platform, " serves")  # "new worker pid Q serves"
    (new,) = re.findall(r"new worker pid (\d+) serves", log)
    assert "stopping" not in log, log
    assert int(new) in workers(platform)
    assert platform.process.running()


def test_a_platform_killed_outright_leaves_no_process_and_nothing_on_disk(
    endpoints: Endpoints, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL of ``serve`` itself: its workers stop with it, and nothing it made (how
    workers tell it they serve included) stays in the temporary folder."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))  # the platform's temporary folder
    with running_platform(endpoints, tmp_path) as platform:
        children = psutil.Process(platform.process.pid).children()
        assert len(workers(platform)) == 2
        os.kill(platform.process.pid, signal.SIGKILL)
        _, alive = psutil.wait_procs(children, timeout=30 * time_scale())
        assert alive == [], platform.process.log_tail(20)
        assert sorted(scratch.iterdir()) == []
