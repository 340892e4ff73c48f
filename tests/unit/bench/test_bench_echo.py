"""The echo server's working directory goes when the server stops (a stand-in process and
a plain listening socket in place of the server)."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bench.echo as echo
import pytest

PORT = 23517


class FakeProcess:
    def __init__(self, alive: bool) -> None:
        self.alive = alive
        self.stopped = 0

    def running(self) -> bool:
        return self.alive

    def log_tail(self, lines: int = 20) -> str:
        return "boom"

    def stop(self, timeout: float = 10.0) -> int | None:
        self.stopped += 1
        self.alive = False
        return 0


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[FakeProcess, Path]]]:
    """start_echo's spawn replaced: each call's process and working directory."""
    calls: list[tuple[FakeProcess, Path]] = []

    def spawn(name: str, argv: list[str], *, log_path: Path, **kwargs: Any) -> FakeProcess:
        process = FakeProcess(True)
        calls.append((process, log_path.parent))
        return process

    monkeypatch.setattr(echo, "spawn", spawn)
    monkeypatch.setattr(echo, "free_port", lambda host: PORT)
    yield calls
    for _, workdir in calls:  # what a failing test left behind
        shutil.rmtree(workdir, ignore_errors=True)


def test_stopping_the_echo_server_removes_its_working_directory(
    spawned: list[tuple[FakeProcess, Path]],
) -> None:
    with socket.create_server(("127.0.0.1", PORT)):
        server, url = echo.start_echo(None, timeout=5.0)
    process, workdir = spawned[0]
    assert url == f"ws://127.0.0.1:{PORT}/"
    assert workdir.name.startswith("squall-bench-echo-")
    assert workdir.is_dir()
    server.stop()
    assert process.stopped == 1
    assert not workdir.exists()


def test_an_echo_server_that_exits_early_leaves_no_working_directory(
    spawned: list[tuple[FakeProcess, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FakeProcess, "running", lambda self: False)
    with pytest.raises(RuntimeError, match="echo server exited early:\nboom"):
        echo.start_echo(None, timeout=5.0)
    _, workdir = spawned[0]
    assert not workdir.exists()
