"""docs/protocol.md's "Metrics" section lists every family ``/metrics`` shows, with the
``# HELP`` text the platform sends, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

from squall.target.metrics import HELP

DOC = Path(__file__).resolve().parents[3] / "docs" / "protocol.md"
ROW = re.compile(r"^\| `squall_target_([a-z_]+)(?:\{[a-z]+\})?` \| (.*) \|$", re.MULTILINE)


def _section() -> str:
    text = DOC.read_text()
    start = text.index("\n## Metrics\n")
    return text[start : text.index("\n## ", start + 1)]


def test_the_metrics_tables_match_the_help_texts() -> None:
    rows = ROW.findall(_section())
    assert [name for name, _ in rows] == list(HELP)
    for name, meaning in rows:
        assert meaning == HELP[name], name


def test_labelled_families_name_their_label() -> None:
    section = _section()
    for family, label in (
        ("errors_total", "code"),
        ("sockets_closed_total", "code"),
        ("events_skipped_total", "reason"),
        ("fills_total", "kind"),
    ):
        assert f"`squall_target_{family}{{{label}}}`" in section
