"""What a report.json dictionary says of the run as a whole, beyond its thresholds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def nothing_ran(report: Mapping[str, Any]) -> bool:
    """Whether none of the run's scenarios ran (each was left out, its notes saying why):
    nothing was judged, so the run did not pass, though no threshold failed either."""
    scenarios = report.get("scenarios") or []
    return bool(scenarios) and not any(s.get("ran", True) for s in scenarios)
