"""A results folder whose disk fills during a race scenario, for real: ``squall run`` in a
mount namespace of its own whose results folder is a tmpfs of 64 KiB. The scenario's
verdicts stand (its checkers judge the histories in memory); the history file it could not
finish is removed, and the run says so."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from test_embedded_full_disk import on_small_tmpfs

from squall.services import Endpoints

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root"),
]


def test_a_history_the_full_disk_cut_short_is_removed_and_the_verdicts_kept(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    results = tmp_path / "results"
    results.mkdir()
    spare = tmp_path / "tmp"
    spare.mkdir()
    env = dict(os.environ)
    env.update(
        DATABASE_URL=endpoints.database_url,
        REDIS_URL=endpoints.redis_url,
        TMPDIR=str(spare),
        SQUALL_RESULTS_DB="off",
        COLUMNS="400",
    )
    run = [sys.executable, "-m", "squall", "run", "--scenario", "db_race", "--no-progress"]
    run += ["--results-dir", str(results)]
    done = on_small_tmpfs("64k", results, run, env=env, cwd=tmp_path, timeout=300)
    out = " ".join((done.stdout + done.stderr).split())
    assert "Traceback" not in out, out
    assert "measurements are lost" not in out, out
    assert "db_race.history.jsonl could not be written (No space left on device" in out, out
    assert "the checkers judged the histories in memory, so the verdicts stand" in out
    # The report files do not fit either: they go to the temporary folder, exit code 2.
    assert done.returncode == 2, out
    (report_path,) = spare.glob("squall-results/*/report.json")
    (scenario,) = json.loads(report_path.read_text())["scenarios"]
    assert (scenario["name"], scenario["verdict"], scenario["error"]) == ("db_race", "passed", None)
