"""A temporary folder on a full disk, for real: ``squall run`` in a mount namespace of its
own whose ``TMPDIR`` is a tmpfs too small for a PostgreSQL cluster. The mount is private
to that process and goes with it; nothing else on the machine sees it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root"),
]

#: Mount a tmpfs of "$1" bytes on "$2", then run the rest.
_ON_SMALL_TMPFS = 'mount -t tmpfs -o size="$1" squall-full "$2" || exit 99; shift 2; exec "$@"'


def _mount_namespaces() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, timeout=30)
    return probe.returncode == 0


def on_small_tmpfs(
    size: str, folder: Path, argv: list[str], *, env: dict[str, str], cwd: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in a mount namespace of its own where ``folder`` is a tmpfs of ``size``
    (``8m``, ``64k``): private to that process, gone with it. Skips the test where mount
    namespaces are not available."""
    if not _mount_namespaces():
        pytest.skip("no mount namespaces here (unshare --mount fails)")
    return subprocess.run(
        ["unshare", "--mount", "sh", "-c", _ON_SMALL_TMPFS, "sh", size, str(folder), *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )


def test_squall_run_names_the_full_temporary_folder(tmp_path: Path) -> None:
    full = tmp_path / "tmp"
    full.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "SQUALL_DATABASE_URL", "SQUALL_REDIS_URL")
    }
    env.update(TMPDIR=str(full), SQUALL_RESULTS_DB="off", COLUMNS="400")
    run = [sys.executable, "-m", "squall", "run", "--scenario", "db_race"]
    run += ["--results-dir", str(tmp_path / "results")]
    # 8 MiB: less than one 16 MiB WAL segment.
    done = on_small_tmpfs("8m", full, run, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 3, done.stdout + done.stderr
    err = " ".join(done.stderr.split())
    assert "squall run: initdb could not create the embedded PostgreSQL cluster in" in err
    assert f"(exit code 1): the disk of {full} is full (No space left on device)." in err
    assert "Free space there, or point TMPDIR at a folder on a larger disk" in err
    assert "Last lines of its output:" in err
    assert "Traceback" not in err
    assert list(full.iterdir()) == []  # the tmpfs was the child's alone
