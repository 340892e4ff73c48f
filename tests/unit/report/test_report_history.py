"""The tables of `squall history` and `squall compare`, from hand-made rows."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console

from squall.config import ConfigError
from squall.report.compare import Change, Comparison, Direction
from squall.report.history import comparison_table, history_table, stored
from squall.report.publish import print_comparison
from squall.store.queries import RunSummary


def _printed(*renderables: object) -> str:
    out = io.StringIO()
    console = Console(file=out, width=300, color_system=None)
    for renderable in renderables:
        console.print(renderable)
    return out.getvalue()


def test_stored_names_with_markup_or_control_characters_print_as_given() -> None:
    # A metric named after an error code a target chose: "[/]" closes no markup tag,
    # "\x1b[2J" would clear the terminal.
    metric = "errors.server.[/]\x1b[2J"
    change = Change(
        "chat[ws]", metric, "per_second", 1.0, 3.0, Direction.HIGHER_IS_WORSE, regression=True
    )
    comparison = Comparison("run-[a]", "run-[b]", 0.1, (change,), ("adapter: [x] → [y]",))
    text = _printed(comparison_table(comparison))
    assert "run-[a] → run-[b]" in text
    assert "│ chat[ws] │ errors.server.[/]\\x1b[2J │ per_second │" in text
    out = io.StringIO()
    print_comparison(Console(file=out, width=300, color_system=None), comparison)
    lines = out.getvalue().splitlines()
    assert "(adapter: [x] → [y])" in lines[0]
    assert lines[1].startswith("✗ regression [chat[ws]] errors.server.[/]\\x1b[2J per_second")
    assert lines[2] == "1 regression(s) against run-[a] (tolerance 10%)"
    assert "\x1b" not in text + out.getvalue()


def test_history_shows_scenario_names_with_brackets() -> None:
    run = RunSummary(
        "20260101-000000-abcd",
        datetime(2026, 1, 1, tzinfo=UTC),
        ("chat[ws]", "[bold]x"),
        "passed",
        0.25,
        0.5,
        0.0,
    )
    text = _printed(history_table([run]))
    assert "chat[ws], [bold]x" in text
    assert "250.0 ms" in text


def test_a_results_dir_that_is_a_file_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    with pytest.raises(ConfigError, match="afile is a file, not a folder; pass --results-dir"):
        stored(None, "off", tmp_path / "afile", cwd=tmp_path)
