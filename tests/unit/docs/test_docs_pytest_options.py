"""docs/pytest.md lists the plugin's markers and options and `squall test`'s options, and
nothing the code does not have."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer.main

from squall.cli import app
from squall.pytest_plugin import MARKERS, pytest_addoption

DOC = Path(__file__).resolve().parents[3] / "docs" / "pytest.md"


def _section(title: str) -> str:
    """The text of the ``## title`` section."""
    text = DOC.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def _first_cells(section: str) -> list[str]:
    """The first cell of each body row of the section's tables."""
    rows = re.findall(r"^\| ([^|]+) \|", section, re.MULTILINE)
    return [cell for cell in rows if set(cell) - set("-") and cell not in ("option", "marker")]


def _flags(cells: list[str]) -> set[str]:
    return {flag for cell in cells for flag in re.findall(r"`(--[a-z][a-z-]*)", cell)}


class _Options:
    """Collects what ``pytest_addoption`` registers (pytest's parser takes the same calls)."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.groups: list[str] = []

    def getgroup(self, name: str, description: str = "") -> _Options:
        self.groups.append(name)
        return self

    def addoption(self, *names: str, **settings: Any) -> None:
        self.names.extend(names)


def _plugin_options() -> set[str]:
    options = _Options()
    pytest_addoption(options)  # type: ignore[arg-type]
    assert options.groups == ["squall"]
    return set(options.names)


def _test_command_options() -> set[str]:
    """The flags of ``squall test`` (typer builds the command line; ``--help`` aside)."""
    command = typer.main.get_command(app).commands["test"]  # type: ignore[attr-defined]
    return {name for param in command.params for name in param.opts if name.startswith("--")}


def test_the_markers_table_names_every_marker() -> None:
    cells = _first_cells(_section("Markers"))
    assert {cell.strip("`") for cell in cells} == set(MARKERS)


def test_the_options_table_names_every_plugin_option() -> None:
    section = _section("Options")
    table = section[: section.index("\n\n", section.index("| option |"))]
    assert _flags(_first_cells(table)) == _plugin_options()


def test_the_squall_test_table_names_every_option_and_its_pytest_equivalent() -> None:
    section = _section("`squall test`: the unified runner")
    rows = re.findall(r"^\| ([^|]+) \| ([^|]+) \|$", section, re.MULTILINE)
    documented: set[str] = set()
    for first, equivalent in rows:
        flags = _flags([first])
        documented |= flags
        if equivalent.strip() == "`--squall-…`":
            assert flags, first
            for flag in flags:
                assert "--squall-" + flag.removeprefix("--") in _plugin_options(), flag
    assert documented == _test_command_options()
