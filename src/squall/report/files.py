"""Result files under ``squall-results/<run id>/``."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from squall.config import ConfigError
from squall.report.html import report_html
from squall.report.junit import junit_xml
from squall.report.openmetrics import openmetrics_text
from squall.suite import SuiteReport

#: The files every run leaves besides report.json, and what writes each.
EXTRA_FILES = {
    "junit.xml": junit_xml,
    "metrics.txt": openmetrics_text,
    "report.html": report_html,
}


def new_run_id(now: float | None = None) -> str:
    """Sortable and unique: ``20261125-183012-3fa9``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return f"{stamp}-{secrets.token_hex(2)}"


def create_results_dir(results_dir: Path) -> None:
    """Create the results folder before a run starts, and check that files can be written
    in it (a run that cannot be saved is not worth starting: an existing folder may be
    read-only, or another user's); :class:`~squall.config.ConfigError` naming the folder
    and the fix otherwise."""
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the results folder {exc.filename}: {exc.strerror or exc}; "
            "pass --results-dir a folder you can write to"
        ) from None
    try:
        with tempfile.TemporaryFile(dir=results_dir):
            pass
    except OSError as exc:
        raise ConfigError(
            f"cannot write in the results folder {results_dir}: {exc.strerror or exc}; "
            "pass --results-dir a folder you can write to"
        ) from None


def _write_atomic(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all: a full disk, or anything else that stops the
    write (an exception, a Ctrl-C), leaves neither a truncated file nor the temporary one
    behind. A lone surrogate the text still holds (UTF-8 cannot encode one; the writers
    show them as escapes already) is written as its escape, ``\\udce9``, rather than
    failing the file."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8", errors="backslashreplace")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_report(report: SuiteReport, results_dir: Path) -> Path:
    """Write ``report.json`` atomically; return the run's folder."""
    folder = results_dir / report.run_id
    folder.mkdir(parents=True, exist_ok=True)
    _write_atomic(folder / "report.json", json.dumps(report.to_dict(), indent=2, default=str))
    return folder


def write_results(report: Mapping[str, Any], folder: Path) -> None:
    """Write ``report.json`` (from a report.json dictionary) and the other files into
    ``folder``; :class:`OSError` when one cannot be written, the earlier ones kept."""
    folder.mkdir(parents=True, exist_ok=True)
    _write_atomic(folder / "report.json", json.dumps(report, indent=2, default=str))
    write_extra_files(report, folder)


def os_problem(exc: OSError) -> str:
    """What went wrong writing a file, for a message: ``No space left on device: /x/y``."""
    return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")


def fallback_folder(run_id: str) -> Path:
    """Where a run's files go when its results folder cannot take them (a full disk, a
    folder removed or made read-only during the run): the system's temporary folder."""
    return Path(tempfile.gettempdir()) / "squall-results" / run_id


def write_extra_files(report: Mapping[str, Any], folder: Path) -> list[Path]:
    """Write junit.xml, metrics.txt and report.html from a report.json dictionary."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, render in EXTRA_FILES.items():
        _write_atomic(folder / name, render(report))
        written.append(folder / name)
    return written
