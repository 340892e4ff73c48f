"""``--help`` shows every help text as written: typer renders it as rich markup, where a
``[word]`` is a style tag and vanishes (``the config's [results] database_url`` printed as
``the config's  database_url``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer.main
from rich.text import Text

from squall.cli import app, main


def _commands(command: Any, path: str = "squall") -> Iterator[tuple[str, Any]]:
    """The command and its subcommands, each with the words that call it."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, f"{path} {name}")


def _help_texts() -> Iterator[tuple[str, str]]:
    for path, command in _commands(typer.main.get_command(app)):
        if command.help:
            yield path, command.help
        for param in command.params:
            text = getattr(param, "help", None)
            if text:
                yield f"{path} {param.name}", text


HELP_TEXTS = sorted(_help_texts())


def test_every_command_and_option_has_help_text() -> None:
    assert len(HELP_TEXTS) > 40


@pytest.mark.parametrize(("where", "text"), HELP_TEXTS, ids=[w for w, _ in HELP_TEXTS])
def test_help_text_is_no_markup(where: str, text: str) -> None:
    assert Text.from_markup(text).plain == text


def test_history_help_names_the_config_keys_it_reads(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    assert main(["history", "--help"]) == 0
    out = capsys.readouterr().out
    assert "default: the config's results.database_url, else as squall run." in out
    assert "default: the config's run.results_dir, else squall-results." in out
