"""Which progress display a run gets: rich's live line only on a terminal that redraws."""

from __future__ import annotations

import contextlib
import os
import pty
import sys
from collections.abc import Iterator

import pytest

from squall.engine.progress import PlainProgress, RichProgress, progress_sink


@contextlib.contextmanager
def on_a_terminal(monkeypatch: pytest.MonkeyPatch, term: str) -> Iterator[None]:
    """Standard output on a real pseudo-terminal of type ``term`` (set in the test itself:
    pytest puts its capture back between a fixture and the test)."""
    master, slave = pty.openpty()
    with open(slave, "w") as tty:
        monkeypatch.setenv("TERM", term)
        monkeypatch.setattr(sys, "stdout", tty)
        try:
            assert sys.stdout.isatty()
            yield
        finally:
            monkeypatch.undo()
            os.close(master)


def test_a_dumb_terminal_gets_a_plain_line_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    # Rich does not redraw on TERM=dumb: the live line showed nothing until the run's end.
    with on_a_terminal(monkeypatch, "dumb"):
        assert isinstance(progress_sink(True), PlainProgress)


def test_a_terminal_that_redraws_gets_the_live_line(monkeypatch: pytest.MonkeyPatch) -> None:
    with on_a_terminal(monkeypatch, "xterm-256color"):
        sink = progress_sink(True)
        try:
            assert isinstance(sink, RichProgress)
        finally:
            sink.close(None)


def test_no_terminal_gets_a_plain_line_a_second() -> None:
    assert not sys.stdout.isatty()  # pytest captures standard output
    assert isinstance(progress_sink(True), PlainProgress)
