"""Owner records, and the sweep of the folders whose owner is gone."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from squall.services.leftovers import (
    OWNER_FILE,
    Owner,
    folder_owner,
    pid_namespace,
    sweep_folders,
)

#: Above the largest PID Linux can give (``pid_max`` is at most 2**22).
NO_SUCH_PID = 2**22 + 1


def test_this_process_is_a_running_owner() -> None:
    owner = Owner.current()
    assert owner.pid == os.getpid()
    assert owner.ours()
    assert owner.running()
    assert not owner.gone()


def test_a_process_that_exited_is_gone(gone_owner: Owner) -> None:
    assert gone_owner.ours()
    assert not gone_owner.running()
    assert gone_owner.gone()


def test_a_pid_that_cannot_exist_is_gone() -> None:
    assert dataclasses.replace(Owner.current(), pid=NO_SUCH_PID).gone()


def test_a_pid_that_started_at_another_time_is_another_process() -> None:
    """The PID was reused: the process that has it now is not the owner."""
    now = Owner.current()
    assert dataclasses.replace(now, started=now.started - 3600).gone()
    assert dataclasses.replace(now, started=now.started + 60).gone()


def test_the_start_is_measured_from_boot_so_a_clock_change_keeps_the_owner() -> None:
    """A record read back after the clock was set an hour forward: the start and the
    boot time moved together, the start since boot did not."""
    now = Owner.current()
    assert not dataclasses.replace(now, started=now.started + 3600, boot=now.boot + 3600).gone()


def test_an_exited_child_not_yet_reaped_is_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        process = psutil.Process(child.pid)
        owner = Owner(Owner.current().host, child.pid, process.create_time(), psutil.boot_time())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            running = owner.running()
            # Read after: a zombie stays one until reaped (below), so a child that exited
            # between the two readings shows here.
            if process.status() == psutil.STATUS_ZOMBIE:
                break
            assert running
            time.sleep(0.01)
        assert process.status() == psutil.STATUS_ZOMBIE
        assert owner.gone()
    finally:
        child.wait(30)


def test_another_hosts_owner_is_never_gone_here(gone_owner: Owner) -> None:
    elsewhere = dataclasses.replace(gone_owner, host=f"not-{gone_owner.host}")
    assert not elsewhere.ours()
    assert not elsewhere.gone()


def test_an_owner_of_another_pid_namespace_is_never_gone_here(gone_owner: Owner) -> None:
    # A container sharing the host's name (--network host) but not its PIDs: its live
    # squall's PID is nobody here, so its folders and databases were swept mid-run.
    here = pid_namespace()
    assert here is not None
    assert gone_owner.pid_namespace == here
    assert gone_owner.gone()
    elsewhere = dataclasses.replace(gone_owner, pid_namespace=here + 1)
    assert not elsewhere.ours()
    assert not elsewhere.gone()
    # A record written before namespaces were recorded is judged by its host, as it was.
    assert dataclasses.replace(gone_owner, pid_namespace=None).gone()


def test_a_record_reads_back_as_written() -> None:
    owner = Owner.current()
    assert Owner.from_json(owner.to_json()) == owner


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[1, 2]",
        '{"host": "h", "pid": 12, "started": 1.5}',
        '{"host": "h", "pid": "12", "started": 1.5, "boot": 1.0}',
        '{"host": "h", "pid": 0, "started": 1.5, "boot": 1.0}',
        '{"host": "h", "pid": true, "started": 1.5, "boot": 1.0}',
        '{"host": 7, "pid": 12, "started": 1.5, "boot": 1.0}',
        '{"host": "h", "pid": 12, "started": "1.5", "boot": 1.0}',
        '{"host": "h", "pid": 12, "started": 1.5, "boot": false}',
        '{"host": "h", "pid": 12, "started": 1.5, "boot": 1.0, "pid_namespace": "4026"}',
    ],
)
def test_text_that_is_no_record_reads_as_none(text: str) -> None:
    assert Owner.from_json(text) is None


def _folder(parent: Path, name: str, record: Owner | str | None) -> Path:
    folder = parent / name
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "PG_VERSION").write_text("17\n")
    if record is not None:
        text = record if isinstance(record, str) else record.to_json()
        (folder / OWNER_FILE).write_text(text)
    return folder


def test_the_sweep_removes_only_folders_whose_owner_is_gone(
    tmp_path: Path, gone_owner: Owner, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = _folder(tmp_path, "squall-pg-stale", gone_owner)
    reused = _folder(
        tmp_path,
        "squall-pg-reused",
        dataclasses.replace(Owner.current(), started=Owner.current().started - 3600),
    )
    kept = {
        _folder(tmp_path, "squall-pg-live", Owner.current()),
        _folder(tmp_path, "squall-pg-bare", None),
        _folder(tmp_path, "squall-pg-junk", "{not a record"),
        _folder(tmp_path, "squall-pg-far", dataclasses.replace(gone_owner, host="elsewhere")),
        _folder(tmp_path, "squall-valkey-other-prefix", gone_owner),
    }
    (tmp_path / "squall-pg-link").symlink_to(stale)
    kept.add(tmp_path / "squall-pg-link")
    sweep_folders(tmp_path, "squall-pg-")
    assert set(tmp_path.iterdir()) == kept
    err = capsys.readouterr().err
    assert f"squall: removed {stale}: left by process {gone_owner.pid} on " in err
    assert f"squall: removed {reused}: left by process {os.getpid()} on " in err
    assert len(err.splitlines()) == 2


def test_a_folder_someone_works_in_stays(
    tmp_path: Path, gone_owner: Owner, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only squall's servers are stopped; a folder another process works in (a shell,
    say) is left with a warning, and the process is left alone."""
    stale = _folder(tmp_path, "squall-pg-busy", gone_owner)
    stranger = subprocess.Popen(["sleep", "60"], cwd=stale / "data")
    try:
        sweep_folders(tmp_path, "squall-pg-")
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait(30)
    assert stale.is_dir()
    err = capsys.readouterr().err
    assert f"squall: warning: left {stale} of process {gone_owner.pid} on " in err
    assert f": process {stranger.pid} (sleep) works in it" in err
    sweep_folders(tmp_path, "squall-pg-")  # once it has gone, so does the folder
    assert not stale.exists()


def test_only_a_folder_with_a_record_has_an_owner(tmp_path: Path, gone_owner: Owner) -> None:
    assert folder_owner(_folder(tmp_path, "squall-pg-x", gone_owner)) == gone_owner
    assert folder_owner(_folder(tmp_path, "squall-pg-y", None)) is None
    assert folder_owner(tmp_path / "missing") is None
    (tmp_path / "squall-pg-file").write_text(gone_owner.to_json())
    assert folder_owner(tmp_path / "squall-pg-file") is None
