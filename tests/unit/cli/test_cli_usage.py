"""The CLI's usage errors: exit code 2 and a message naming the problem."""

from __future__ import annotations

import pytest

from squall import __version__
from squall.cli import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == __version__


def test_bad_option_value_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--scale", "abc"]) == 2
    err = capsys.readouterr().err
    assert "Invalid value for '--scale'" in err
    assert "Usage: squall run" in err


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nope"]) == 2
    assert "No such command 'nope'" in capsys.readouterr().err
