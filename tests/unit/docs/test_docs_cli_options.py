"""Every option of every ``squall`` command is described in README.md or docs/, and every
``squall`` command line the docs show uses only options that command has."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main

from squall.cli import app

ROOT = Path(__file__).resolve().parents[3]
#: The pages a user reads for the command line (docs/benchmarks.md is about bench/).
PAGES = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md"))]
PAGES = [p for p in PAGES if p.name != "benchmarks.md"]
#: A ``squall ...`` command line in a code block or span: the words after ``squall``.
COMMAND_LINE = re.compile(r"(?:^|[\s`/])squall((?: +[^\s`#|]+)+)")


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


COMMANDS = dict(_commands(typer.main.get_command(app)))


def _options(command: Any) -> set[str]:
    return {
        opt
        for param in command.params
        for opt in (*param.opts, *param.secondary_opts)
        if opt.startswith("-")
    } - {"--help"}


def _code() -> str:
    """The text of every code block and code span of the pages."""
    found: list[str] = []
    for page in PAGES:
        text = page.read_text()
        blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
        found += blocks
        found += re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", text, flags=re.M | re.S))
    return "\n".join(found)


CODE = _code()


@pytest.mark.parametrize(
    ("command", "option"),
    sorted(
        (" ".join(("squall", *path)), opt)
        for path, cmd in COMMANDS.items()
        for opt in _options(cmd)
    ),
)
def test_every_option_is_described(command: str, option: str) -> None:
    assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", CODE), (
        f"{command} {option} appears in no code span of README.md or docs/"
    )


def _shown_command_lines() -> Iterator[tuple[tuple[str, ...], list[str]]]:
    """Each command line the code shows: the command's path and the options it passes."""
    for line in CODE.splitlines():
        for words in COMMAND_LINE.findall(line):
            tokens = words.split()
            path: tuple[str, ...] = ()
            while tokens and (*path, tokens[0]) in COMMANDS:
                path = (*path, tokens.pop(0))
            if not path:
                continue  # prose ("squall connects"), a module name (squall.config), …
            flags = [t.split("=")[0].strip("[]") for t in tokens if t.lstrip("[").startswith("-")]
            yield path, [f for f in flags if f not in ("--", "-", "--help")]


def test_the_docs_show_command_lines() -> None:
    shown = {path for path, _ in _shown_command_lines()}
    assert {("run",), ("test",), ("history",), ("compare",), ("target", "serve")} <= shown


def test_command_lines_in_the_docs_use_options_the_command_has() -> None:
    wrong = {
        f"squall {' '.join(path)} {flag}"
        for path, flags in _shown_command_lines()
        for flag in flags
        if flag not in _options(COMMANDS[path])
    }
    assert wrong == set()
