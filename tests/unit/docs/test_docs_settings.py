"""docs/configuration.md lists every platform setting, and no setting that does not exist;
the range it gives each numeric setting is the one the platform takes."""

from __future__ import annotations

import math
import re
from dataclasses import fields
from pathlib import Path
from typing import get_type_hints

import pytest

from squall.target.settings import RANGES, Settings, SettingsError

DOC = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"
ROW = re.compile(r"^\| `(SQUALL_[A-Z0-9_]+)` \| [^|]* \| ([^|]*) \|", re.MULTILINE)
HINTS = get_type_hints(Settings)
NUMERIC = sorted(f.name for f in fields(Settings) if HINTS[f.name] in (int, float))


def _values() -> dict[str, str]:
    """Each documented variable's "values" cell."""
    return dict(ROW.findall(DOC.read_text()))


def test_every_platform_setting_is_documented() -> None:
    documented = set(re.findall(r"^\| `(SQUALL_[A-Z0-9_]+)` \|", DOC.read_text(), re.MULTILINE))
    actual = {Settings.env_name(f.name) for f in fields(Settings)}
    assert documented == actual


@pytest.mark.parametrize("name", NUMERIC)
def test_the_documented_range_is_the_one_refused_outside(name: str) -> None:
    variable = Settings.env_name(name)
    cell = _values()[variable]
    kind = "integer" if HINTS[name] is int else "number"
    found = re.fullmatch(rf"{kind} (?:(>|≥) (\d+)|(\d+) to (\d+))", cell)
    assert found, f"{variable}: {cell!r} is not '{kind} ≥ N', '{kind} > N' or '{kind} A to B'"
    sign, least, low, high = found.groups()
    allowed = RANGES[name]
    if sign is not None:
        assert (allowed.least, allowed.above, allowed.most) == (int(least), sign == ">", math.inf)
    else:
        assert (allowed.least, allowed.above, allowed.most) == (int(low), False, int(high))
    step = 1 if kind == "integer" else 0.5
    bottom = allowed.least + (step if allowed.above else 0)
    refused = [bottom - step, *(["nan", "inf"] if kind == "number" else [])]
    if allowed.most < math.inf:
        refused.append(allowed.most + step)
    for value in refused:
        with pytest.raises(SettingsError, match=f"^{variable}="):
            Settings.from_env({variable: str(value)})
    for value in (bottom, allowed.most if allowed.most < math.inf else bottom + 1):
        Settings.from_env({variable: str(value)})
