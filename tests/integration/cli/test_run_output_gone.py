"""``squall run`` whose standard output fails (a reader gone, a full device, a closed
descriptor, an encoding without a character squall prints): the run is written all the
same, and the exit code is the run's own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from squall.services import Endpoints

pytestmark = pytest.mark.integration

#: A run of the scenario that talks to no target: no platform to start.
ARGV = [sys.executable, "-m", "squall", "run", "-s", "redis_locks", "--no-progress"]


def _run(results: Path, *more: str, **popen: object) -> tuple[int, str]:
    """Run squall with ``popen``'s standard output; its exit code and standard error."""
    env = {**os.environ, "SQUALL_RESULTS_DB": "off", **popen.pop("env", {})}  # type: ignore[dict-item]
    child = subprocess.Popen(
        [*ARGV, "--results-dir", str(results), *more],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **popen,  # type: ignore[call-overload]
    )
    _, err = child.communicate(timeout=120)
    return child.returncode, err


def _report(results: Path) -> dict[str, object]:
    (path,) = results.glob("*/report.json")
    data: dict[str, object] = json.loads(path.read_text())
    return data


def test_a_reader_gone_leaves_the_run_whole(shared_services: Endpoints, tmp_path: Path) -> None:
    # `squall run | head -1`: rich ended the command with exit code 1 at the first line
    # after the reader left, the run's files never written.
    read, write = os.pipe()
    os.close(read)
    try:
        code, err = _run(tmp_path, stdout=write)
    finally:
        os.close(write)
    assert code == 0, err
    assert "standard output failed (Broken pipe): the rest is not printed" in err
    assert "Traceback" not in err
    assert _report(tmp_path)["scenarios"]


def test_a_full_device_leaves_the_run_whole(shared_services: Endpoints, tmp_path: Path) -> None:
    with open("/dev/full", "w") as full:
        code, err = _run(tmp_path, stdout=full)
    assert code == 0, err
    assert "standard output failed (No space left on device)" in err
    assert "Traceback" not in err
    assert _report(tmp_path)["scenarios"]


def test_a_closed_standard_output_leaves_the_run_whole(
    shared_services: Endpoints, tmp_path: Path
) -> None:
    # `squall run >&-`: sys.stdout is None, and squall failed on its isatty().
    code, err = _run(tmp_path, stdout=subprocess.DEVNULL, preexec_fn=lambda: os.close(1))
    assert code == 0, err
    assert "Traceback" not in err
    # Said once, as the README says of every failed standard output (it was said of none).
    assert err.count("standard output failed (Bad file descriptor): the rest is not") == 1
    assert _report(tmp_path)["scenarios"]


def test_a_character_the_encoding_lacks_is_printed_as_a_question_mark(
    shared_services: Endpoints, tmp_path: Path
) -> None:
    # A failed threshold's ✗ in a Latin-1 locale raised UnicodeEncodeError: a failed run
    # lost its files and read as a crash.
    code, err = _run(
        tmp_path,
        "--set",
        "thresholds.violations=value==1",
        stdout=subprocess.PIPE,
        env={"PYTHONIOENCODING": "latin-1"},
    )
    assert code == 1, err
    assert "Traceback" not in err
    verdict = _report(tmp_path)["verdict"]
    assert isinstance(verdict, dict)
    assert (verdict["ok"], verdict["failed"]) == (False, 1)


@pytest.mark.parametrize("argv", [["version"], ["target", "token", "u1"]])
def test_commands_printing_with_click_outlive_a_closed_standard_output(argv: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "squall", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.close(1),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
