"""What a report.json dictionary says of the run as a whole, beyond its thresholds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from squall.interrupt import by_signal


def nothing_ran(report: Mapping[str, Any]) -> bool:
    """Whether none of the run's scenarios ran (each was left out, its notes saying why):
    nothing was judged, so the run did not pass, though no threshold failed either."""
    scenarios = report.get("scenarios") or []
    return bool(scenarios) and not any(s.get("ran", True) for s in scenarios)


def cut_short(scenario: Mapping[str, Any]) -> str | None:
    """The signal that stopped a scenario's load before its end (``sigint``), if one did
    (a report.json scenario): its results are partial. None for one stopped once its load
    had ended (whole results)."""
    result = scenario.get("result")
    reason = result.get("interrupted_reason") if isinstance(result, Mapping) else None
    return str(reason) if by_signal(reason) else None
