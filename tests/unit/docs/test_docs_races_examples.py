"""docs/races.md's examples call the race scenarios with arguments they take and read what
their reports have."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_type_hints

import pytest

from squall.scenarios.db_race import run_db_race
from squall.scenarios.platform_races import ALL_PARTS, Part, run_platform_races
from squall.scenarios.redis_locks import run_redis_locks

DOC = Path(__file__).resolve().parents[3] / "docs" / "races.md"
RUNNERS: dict[str, Callable[..., Any]] = {
    f.__name__: f for f in (run_db_race, run_redis_locks, run_platform_races)
}


def _examples() -> dict[str, str]:
    """Each ``report = await run_…(`` example block by the function it calls."""
    blocks = re.findall(r"^```python\n(.*?)^```", DOC.read_text(), re.MULTILINE | re.DOTALL)
    found: dict[str, str] = {}
    for block in blocks:
        call = re.match(r"report = await (run_\w+)\(", block)
        if call:
            found[call.group(1)] = block
    return found


def test_every_race_scenario_has_an_example() -> None:
    assert set(_examples()) == set(RUNNERS)


@pytest.mark.parametrize("name", sorted(RUNNERS))
def test_the_example_passes_only_parameters_the_scenario_takes(name: str) -> None:
    block = _examples()[name]
    call = block[: block.index("\n)\n")]
    keywords = re.findall(r"^\s*(\w+)=", call, re.MULTILINE)
    keywords += re.findall(r"[(,]\s*(\w+)=", call)
    assert keywords, block
    parameters = inspect.signature(RUNNERS[name]).parameters
    assert set(keywords) <= set(parameters), set(keywords) - set(parameters)


@pytest.mark.parametrize("name", ["run_db_race", "run_platform_races"])
def test_the_example_reads_what_the_report_has(name: str) -> None:
    block = _examples()[name]
    report = get_type_hints(RUNNERS[name])["return"]
    used = set(re.findall(r"\breport\.(\w+)", block))
    assert used, block
    assert {attribute for attribute in used if not hasattr(report, attribute)} == set()


def test_the_platform_races_example_lists_every_part() -> None:
    block = _examples()["run_platform_races"]
    comment = block[block.index("parts=ALL_PARTS,") : block.index("redis_url=")]
    listed = re.findall(r"\b[A-Z][A-Z_]+\b", comment.replace("ALL_PARTS", ""))
    assert sorted(listed) == sorted(part.name for part in Part)
    assert set(ALL_PARTS) == set(Part)
