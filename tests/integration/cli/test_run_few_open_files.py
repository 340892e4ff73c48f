"""``squall run`` under an open-files limit too low for a run: said before it starts, by
squall and by the platform it starts, naming the limit and how to raise it."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from squall.services import Endpoints

pytestmark = pytest.mark.integration


def _few_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


def test_a_low_open_files_limit_is_named_with_its_fix(
    shared_services: Endpoints, tmp_path: Path
) -> None:
    # With a hard limit of 64 a run took 277 s instead of 11 and failed on "PostgreSQL is
    # unreachable (Too many open files)": the target judged broken, the limit never named.
    argv = [sys.executable, "-m", "squall", "run", "-s", "websocket_concurrency"]
    argv += ["--scale", "0.05", "--no-progress", "--results-dir", str(tmp_path)]
    argv += ["--set", "scenarios.websocket_concurrency.messages=2"]
    child = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env={**os.environ, "SQUALL_RESULTS_DB": "off"},
        preexec_fn=_few_files,
        timeout=180,
        check=False,
    )
    out = " ".join(child.stdout.split())
    assert "! this process may open 256 files at most (ulimit -n)" in out, child.stdout
    assert "Raise the hard limit to 1,024 or more" in out
    (log,) = tmp_path.glob("*/platform.log")
    assert "squall target: this process may open 256 files at most" in log.read_text()
