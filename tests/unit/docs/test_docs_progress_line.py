"""docs/scenarios.md's "Progress" section shows the line squall prints, as it prints it."""

from __future__ import annotations

from pathlib import Path

from squall.engine.progress import describe
from squall.engine.series import ProgressView

DOC = Path(__file__).resolve().parents[3] / "docs" / "scenarios.md"


def _example() -> str:
    text = DOC.read_text()
    section = text[text.index("\n## Progress\n") :]
    start = section.index("```\n") + len("```\n")
    return section[start : section.index("\n```", start)]


def test_the_documented_progress_line_is_what_describe_prints() -> None:
    view = ProgressView(
        elapsed_s=12.0,
        remaining_s=18.0,
        users=50,
        connections=12,
        connections_peak=50,
        sent_per_s=4210.0,
        received_per_s=4198.0,
        p50=0.0031,
        p99=0.0098,
        errors=0,
        warning=None,
    )
    assert describe(view) == _example()
