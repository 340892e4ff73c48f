"""start_platform's readiness: the ready line of this start, not of an earlier one."""

from __future__ import annotations

from pathlib import Path

from squall.services.platform import _announced
from squall.target.protocol import READY_LINE

READY = f"{READY_LINE}ws://127.0.0.1:8765/v1/ws (2 workers)\n"


def test_the_ready_line_past_the_offset_counts(tmp_path: Path) -> None:
    log = tmp_path / "platform.log"
    log.write_text("starting\n")
    offset = log.stat().st_size
    assert not _announced(log, offset)
    with log.open("a") as out:
        out.write(READY)
    assert _announced(log, offset)


def test_an_earlier_platforms_ready_line_does_not(tmp_path: Path) -> None:
    log = tmp_path / "platform.log"
    log.write_text(f"{READY}squall target: stopped\n")
    assert not _announced(log, log.stat().st_size)


def test_no_log_yet_is_not_ready(tmp_path: Path) -> None:
    assert not _announced(tmp_path / "platform.log", 0)
