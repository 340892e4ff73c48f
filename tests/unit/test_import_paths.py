"""The hint for user code that sits in the current folder but is not importable (pure)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from squall.adapters.registry import UnknownAdapter
from squall.adapters.registry import load as load_adapter
from squall.engine import Scenario, ScenarioError, closed
from squall.import_paths import not_on_path_hint


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder holding a package and a module, current but not on ``sys.path``."""
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "single.py").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    return tmp_path


def test_a_package_or_module_here_gets_the_hint(project: Path) -> None:
    for module in ("mypkg.proto", "single"):
        hint = not_on_path_hint(module)
        assert f"{module.partition('.')[0]!r} is in the current folder" in hint
        assert "PYTHONPATH=." in hint


def test_no_hint_when_the_folder_is_on_the_path_or_the_module_elsewhere(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not_on_path_hint("elsewhere.mod") == ""
    monkeypatch.setattr(sys, "path", ["", *sys.path])
    assert not_on_path_hint("mypkg.proto") == ""


def test_adapter_and_behaviour_errors_carry_it(project: Path) -> None:
    with pytest.raises(UnknownAdapter, match=r"'mypkg' is in the current folder"):
        load_adapter("mypkg.proto:MyAdapter")
    scenario = Scenario(name="x", behaviour="single:chat", workload=closed(1, iterations=1))
    with pytest.raises(ScenarioError, match=r"'single' is in the current folder"):
        scenario.resolve_behaviour()
