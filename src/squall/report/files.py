"""Result files under ``squall-results/<run id>/``."""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path

from squall.suite import SuiteReport


def new_run_id(now: float | None = None) -> str:
    """Sortable and unique: ``20261125-183012-3fa9``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return f"{stamp}-{secrets.token_hex(2)}"


def write_report(report: SuiteReport, results_dir: Path) -> Path:
    """Write ``report.json`` atomically; return the run's folder."""
    folder = results_dir / report.run_id
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "report.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report.to_dict(), indent=2, default=str))
    os.replace(tmp, path)
    return folder
