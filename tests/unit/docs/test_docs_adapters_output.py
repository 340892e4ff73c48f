"""docs/adapters.md's example of a run against the echo service shows the notes squall
prints for it, in the order it prints them."""

from __future__ import annotations

from pathlib import Path

from squall.adapters.echo import EchoAdapter
from squall.monitor.report import MonitorReport
from squall.suite import memory_note

DOC = Path(__file__).resolve().parents[3] / "docs" / "adapters.md"


def _notes_block() -> list[str]:
    text = DOC.read_text()
    start = text.index("```text\nwebsocket_concurrency passed in")
    block = text[start : text.index("\n```", start + 1)].splitlines()[2:]
    assert all(line.startswith("  ! ") for line in block), block
    return [line.removeprefix("  ! ") for line in block]


def test_the_echo_runs_notes_are_the_adapters_then_the_unmonitored_target() -> None:
    # The echo service is not started by squall and no monitor.pids / ports name it.
    unmonitored = memory_note(MonitorReport(interval_s=1.0, cpu_count=2))
    expected = [*EchoAdapter.capabilities.not_applicable("echo"), unmonitored]
    assert _notes_block() == expected
