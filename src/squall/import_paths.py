"""Import paths (``package.module:name``) of user code: behaviours and adapters.

The ``squall`` command, like every console script, does not put the current folder
on Python's path, so a module sitting next to the user's files imports under
``python -m`` or pytest and not under ``squall``; the hint says so.
"""

from __future__ import annotations

import sys
from pathlib import Path


def not_on_path_hint(module_name: str, cwd: Path | None = None) -> str:
    """A sentence for an import error of ``module_name`` when its top package is in ``cwd``
    (default: the current folder) and that folder is not on ``sys.path``; "" otherwise."""
    folder = Path.cwd() if cwd is None else cwd
    top = module_name.partition(".")[0]
    here = (folder / top).is_dir() or (folder / f"{top}.py").is_file()
    on_path = any(Path(entry or ".").resolve() == folder.resolve() for entry in sys.path)
    if not here or on_path:
        return ""
    return (
        f" {top!r} is in the current folder, which is not on Python's path: run with "
        "PYTHONPATH=. (or install the package)"
    )


def module_failed(exc: Exception) -> str:
    """What a user module raised while it was imported (a syntax error, a NameError at its
    top level...), and the fix: "raised NameError: ... (at mod.py:3); fix the module"."""
    from squall.engine.errors import describe

    detail = exc if isinstance(exc, SyntaxError) else describe(exc)
    return f"raised {type(exc).__name__}: {detail}; fix the module"
