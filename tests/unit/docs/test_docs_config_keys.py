"""docs/configuration.md's key tables list every key each config table takes, with the
default the code has, and its scenario table every ``[scenarios.<name>]`` parameter each
scenario accepts, with the defaults it gives."""

from __future__ import annotations

import inspect
import re
import tomllib
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from squall import config as config_module
from squall.config import MonitorConfig, ResultsConfig, RunConfig, TargetConfig
from squall.scenarios import (
    agent_context,
    db_race,
    long_conversation,
    platform_races,
    redis_locks,
    websocket_concurrency,
)
from squall.suite import SCENARIOS

DOC = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"

#: Each documented table, the keys the loader takes there and the dataclass it fills.
TABLES: dict[str, tuple[tuple[str, ...], Any]] = {
    "target": (config_module._TARGET_KEYS, TargetConfig),
    "run": (config_module._RUN_KEYS, RunConfig),
    "monitor": (config_module._MONITOR_KEYS, MonitorConfig),
    "results": (config_module._RESULTS_KEYS, ResultsConfig),
}
#: The function whose keyword defaults each scenario's parameters take.
SCENARIO_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "websocket_concurrency": websocket_concurrency.build,
    "agent_context": agent_context.build,
    "long_conversation": long_conversation.build,
    "db_race": db_race.run_db_race,
    "redis_locks": redis_locks.run_redis_locks,
    "platform_races": platform_races.run_platform_races,
}


def _section(heading: str) -> str:
    text = DOC.read_text()
    start = text.index(f"\n### `[{heading}]`")
    end = text.find("\n#", start + 1)
    return text[start:end]


def _key_rows(table: str) -> dict[str, str]:
    """Each documented key of ``[table]`` and its "default" cell."""
    rows = re.findall(r"^\| `(\w+)` \| [^|]+ \| ([^|]+) \|", _section(table), re.MULTILINE)
    return {key: default.strip() for key, default in rows}


@pytest.mark.parametrize("table", sorted(TABLES))
def test_every_key_of_the_table_is_documented(table: str) -> None:
    keys, _ = TABLES[table]
    assert set(_key_rows(table)) == set(keys)


def _code_default(table: str, key: str) -> Any:
    _, dataclass = TABLES[table]
    name = "duration_s" if key == "duration" else key
    (found,) = [f for f in fields(dataclass) if f.name == name]
    default = found.default
    if isinstance(default, tuple):
        return list(default)
    if isinstance(default, Path):
        return str(default)
    return default


@pytest.mark.parametrize(
    ("table", "key"), sorted((table, key) for table in TABLES for key in _key_rows(table))
)
def test_a_literal_default_is_the_one_the_code_has(table: str, key: str) -> None:
    cell = _key_rows(table)[key]
    literal = re.match(r"`([^`]+)`", cell)
    if literal is None:
        # Described in words ("none", "unset", "one per core"): nothing is set.
        assert _code_default(table, key) is None, cell
        return
    assert tomllib.loads(f"v = {literal.group(1)}")["v"] == _code_default(table, key)


def _scenario_rows() -> dict[str, str]:
    section = _section("scenarios.<name>")
    return dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|$", section, re.MULTILINE))


def _documented_params(cell: str) -> dict[str, str | None]:
    """Each parameter of a cell and the default in parentheses after it, if any."""
    found: dict[str, str | None] = {}
    for part in re.split(r",\s*(?![^()]*\))", cell.strip()):
        named = re.fullmatch(r"`(\w+)`(?: \(([^)]*)\))?", part.strip())
        assert named, f"unreadable parameter {part!r} in {cell!r}"
        found[named.group(1)] = named.group(2)
    return found


def test_the_scenario_table_names_every_scenario() -> None:
    assert set(_scenario_rows()) == set(SCENARIOS) == set(SCENARIO_FUNCTIONS)


@pytest.mark.parametrize("scenario", sorted(SCENARIO_FUNCTIONS))
def test_the_scenario_table_names_every_parameter_with_its_default(scenario: str) -> None:
    documented = _documented_params(_scenario_rows()[scenario])
    assert set(documented) == set(SCENARIOS[scenario].params)
    defaults = inspect.signature(SCENARIO_FUNCTIONS[scenario]).parameters
    for name, note in documented.items():
        number = re.match(r"\d+(?:\.\d+)?(?=$|[;:])", note or "")
        if number is not None:
            assert float(number.group()) == defaults[name].default, (name, note)
