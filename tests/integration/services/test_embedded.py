from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import psutil
import pytest
import redis

from squall.services import Endpoints, ServiceUnavailable, embedded, services, stack
from squall.services.process import ProcessStartError

pytestmark = pytest.mark.integration


async def _fetchval(url: str, sql: str) -> object:
    """The first value of ``sql`` on the server at ``url``, over a connection of its own."""
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def test_embedded_servers_answer_and_stop() -> None:
    with services(environ={}) as ep:
        assert ep.embedded == ("postgres", "valkey")
        assert asyncio.run(_fetchval(ep.database_url, "SELECT 41 + 1")) == 42
        assert redis.Redis.from_url(ep.redis_url).ping()
        pids = [ep.postgres_pid, ep.redis_pid]
    for pid in pids:
        assert pid is not None
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"


def test_the_embedded_redis_restarts_empty_on_its_port(endpoints: Endpoints) -> None:
    with services(database_url=endpoints.database_url, environ={}) as ep:
        assert ep.embedded == ("valkey",)
        assert ep.restart_redis is not None
        client = redis.Redis.from_url(ep.redis_url)
        client.set("kept?", "no")
        asyncio.run(ep.restart_redis())
        # The loop that restarted it is gone, its worker threads with it: the new server
        # must not have been their child (a parent-death signal follows the thread).
        time.sleep(0.3)
        assert client.get("kept?") is None  # a new, empty server at the same URL
        assert client.ping()
        client.close()
        pid = ep.redis_pid
    assert pid is not None
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"


KEPT = "SELECT v FROM kept"


def test_the_embedded_postgres_restarts_on_its_port_with_its_data(endpoints: Endpoints) -> None:
    with services(redis_url=endpoints.redis_url, environ={}) as ep:
        assert ep.embedded == ("postgres",)
        assert ep.restart_postgres is not None
        assert ep.restart_redis is None

        async def restart() -> tuple[str, bool]:
            conn = await asyncpg.connect(ep.database_url)
            await conn.execute("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('yes')")
            assert ep.restart_postgres is not None
            await ep.restart_postgres()
            # The connection from before was closed by the server's shutdown.
            with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
                await conn.fetchval("SELECT 1")
            return str(await _fetchval(ep.database_url, KEPT)), conn.is_closed()

        before = ep.postgres_pid
        assert asyncio.run(restart()) == ("yes", True)
        time.sleep(0.3)  # the restarting loop's threads are gone; the server is not
        assert asyncio.run(_fetchval(ep.database_url, KEPT)) == "yes"
        # The monitor asks for the server's PID when a scenario starts: the new one.
        assert ep.postgres_pid is not None
        assert ep.postgres_pid != before
        assert psutil.Process(ep.postgres_pid).name() == "postgres"


def test_a_given_redis_is_not_restarted(endpoints: Endpoints) -> None:
    with services(endpoints.database_url, endpoints.redis_url, environ={}) as ep:
        assert ep.restart_redis is None


@pytest.mark.parametrize("lang", ["C.UTF-8", "xx_NOT_GENERATED.UTF-8"])
def test_embedded_cluster_has_the_builtin_locale_whatever_lang(
    lang: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Byte-order text comparison and Unicode case mapping, from PostgreSQL itself, even
    when LANG names a locale the host does not have."""
    monkeypatch.setenv("LANG", lang)
    monkeypatch.delenv("LC_ALL", raising=False)
    with services(environ={}) as ep:

        async def query() -> tuple[str, str, str, bool]:
            conn = await asyncpg.connect(ep.database_url)
            try:
                row = await conn.fetchrow(
                    "SELECT datlocprovider::text AS provider, datlocale AS locale, "
                    "to_tsvector('simple', 'ÉCLAIR Привет')::text AS words, "
                    "'B' < 'a' AS byte_order "
                    "FROM pg_database WHERE datname = current_database()"
                )
                assert row is not None
                return row["provider"], row["locale"], row["words"], row["byte_order"]
            finally:
                await conn.close()

        provider, locale, words, byte_order = asyncio.run(query())
    assert (provider, locale) == ("b", "C.UTF-8")
    assert words == "'éclair':1 'привет':2"
    assert byte_order


def test_unreachable_url_names_service_and_fix() -> None:
    with (
        pytest.raises(ServiceUnavailable, match=r"PostgreSQL at .*127\.0\.0\.1:1.*DATABASE_URL"),
        services("postgresql://postgres@127.0.0.1:1/x", "redis://127.0.0.1:1/0"),
    ):
        pass


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_no_orphans_when_parent_is_killed(sig: signal.Signals) -> None:
    code = (
        "import sys\n"
        "from squall.services import services\n"
        "import time\n"
        "with services(environ={}) as ep:\n"
        "    print(ep.postgres_pid, ep.redis_pid, flush=True)\n"
        "    time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    line = child.stdout.readline()
    pids = [int(p) for p in line.split()]
    assert len(pids) == 2
    os.kill(child.pid, sig)
    child.wait(30)
    deadline = time.monotonic() + 20
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
        time.sleep(0.1)
    assert alive == [], f"servers outlived their parent after {sig.name}: {alive}"


def test_a_cluster_under_a_long_tmpdir_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its Unix socket went in its folder under TMPDIR, and a socket's path holds 107 bytes
    # at most: "postgres exited with code 1 before accepting connections".
    long = tmp_path / ("a-long-temporary-folder-" * 4)
    long.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(long))
    server = embedded.EmbeddedPostgres.start(timeout=60)
    try:
        assert str(server.workdir).startswith(str(long))
        assert len(str(server.workdir / ".s.PGSQL.65535")) > 107
        databases = asyncio.run(_fetchval(server.url, "SELECT count(*) FROM pg_database"))
        assert isinstance(databases, int)
        assert databases >= 3
    finally:
        server.stop()


def test_initdb_dies_with_the_process_that_runs_it(tmp_path: Path) -> None:
    # A squall killed with SIGKILL while it created a cluster left initdb running on.
    # Here a stand-in for initdb that only sleeps, so the kill lands while it runs.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    pid_file = tmp_path / "initdb.pid"
    stand_in = bindir / "initdb"
    stand_in.write_text(f"#!/bin/sh\necho $$ > '{pid_file}'\nexec sleep 60\n")
    stand_in.chmod(0o755)
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from squall.services.embedded import initdb\n"
        "initdb(Path(sys.argv[1]), Path(sys.argv[2]), None, sync=False)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code, str(bindir), str(tmp_path / "data")])
    pid = None
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text().strip():
            assert time.monotonic() < deadline, "the stand-in for initdb never started"
            time.sleep(0.05)
        pid = int(pid_file.read_text())
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
        deadline = time.monotonic() + 20
        while psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie":
            assert time.monotonic() < deadline, "initdb outlived the process that ran it"
            time.sleep(0.05)
    finally:
        if child.poll() is None:
            child.kill()
        if pid is not None and psutil.pid_exists(pid):
            os.kill(pid, signal.SIGKILL)


def test_valkey_is_ready_only_when_it_listens_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    # Another program taking the chosen port first (between free_port and the bind): the
    # readiness check took its listener for Valkey's, returned a server that had exited
    # with "Address already in use", and squall sent Redis traffic to that program.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setattr(embedded, "free_port", lambda host="127.0.0.1": port)
        with pytest.raises(ProcessStartError, match=r"valkey exited with code \d+ before"):
            embedded.EmbeddedValkey.start(timeout=20)


def test_a_given_redis_is_checked_before_an_embedded_postgresql_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The docs say a given server is connected to once before anything starts: an
    # unreachable REDIS_URL was reported only after initdb and a postmaster had run.
    started: list[str] = []

    def start(*args: object, **kwargs: object) -> None:
        started.append("postgres")
        raise AssertionError("an embedded PostgreSQL was started")

    monkeypatch.setattr(stack.EmbeddedPostgres, "start", start)
    with (
        pytest.raises(ServiceUnavailable, match=r"Redis at redis://127\.0\.0\.1:1/0"),
        services(redis_url="redis://127.0.0.1:1/0", environ={}),
    ):
        pass
    assert started == []
