"""Every ``squall.…`` name docs/adapters.md gives exists, and the registered adapters it
names are the registry's."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from squall.adapters.registry import names, path_of

DOC = Path(__file__).resolve().parents[3] / "docs" / "adapters.md"
DOTTED = re.compile(r"`(squall(?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


def _resolves(dotted: str) -> bool:
    """Whether ``dotted`` is a module, or an attribute (nested ones too) of one."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(found, attribute):
                return False
            found = getattr(found, attribute)
        return True
    return False


def test_every_squall_name_in_the_doc_exists() -> None:
    found = set(DOTTED.findall(DOC.read_text()))
    assert "squall.engine.identity.Identity" in found
    missing = sorted(name for name in found if not _resolves(name))
    assert missing == []


def test_the_doc_names_the_registered_adapters_and_their_classes() -> None:
    text = " ".join(DOC.read_text().split())
    for name in names():
        assert f"`{name}`" in text, name
        module, _, attribute = path_of(name).partition(":")
        assert f"`{name}` (`{module}.{attribute}`)" in text, path_of(name)
