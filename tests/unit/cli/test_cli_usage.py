"""The CLI's usage errors: exit code 2 and a message naming the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from squall import __version__
from squall.cli import main
from squall.config import load_config
from squall.runner import RunRequest, processes_beside


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


def test_command_line_values_reach_the_config_unchanged(tmp_path: Path) -> None:
    odd = tmp_path / 'a\\b "quoted"'
    request = RunRequest(scenarios=("db_race",), results_dir=odd, target='ws://h:1/"x"\\y')
    config = load_config(cwd=tmp_path, overrides=request.config_overrides())
    assert config.run.results_dir == odd
    assert config.target.url == 'ws://h:1/"x"\\y'
    assert config.run.scenarios == ("db_race",)


@pytest.mark.parametrize(
    ("workers", "cores", "expected"), [(2, 2, 1), (2, 8, 6), (4, 2, 1), (1, 1, 1), (2, 3, 1)]
)
def test_generator_processes_beside_a_local_platform(
    workers: int, cores: int, expected: int
) -> None:
    assert processes_beside(workers, cores) == expected
