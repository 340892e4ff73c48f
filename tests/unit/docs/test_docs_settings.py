"""docs/configuration.md lists every platform setting, and no setting that does not exist."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from squall.target.settings import Settings

DOC = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


def test_every_platform_setting_is_documented() -> None:
    documented = set(re.findall(r"^\| `(SQUALL_[A-Z0-9_]+)` \|", DOC.read_text(), re.MULTILINE))
    actual = {Settings.env_name(f.name) for f in fields(Settings)}
    assert documented == actual
