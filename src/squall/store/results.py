"""The post-run step of the store: save a run, then judge it against a baseline.

Used by :func:`squall.report.publish.publish` after the JSON files are on disk,
so a database that cannot be reached loses nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from squall.report.compare import DEFAULT_TOLERANCE, Comparison, compare
from squall.store.queries import previous_run, resolve_run, run_figures
from squall.store.records import Provenance
from squall.store.writer import save_report


@dataclass(frozen=True)
class BaselineOutcome:
    """What ``--baseline`` found: a comparison, or why there is none."""

    comparison: Comparison | None
    missing: str | None = None


async def _baseline(url: str, run_id: str, ref: str, tolerance: float) -> BaselineOutcome:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        if ref == "last":
            found = await previous_run(conn, run_id)
            if found is None:
                return BaselineOutcome(
                    None, "no earlier run of the same scenarios is stored: nothing to compare"
                )
            base = found
        else:
            base = await resolve_run(conn, ref)
        before = await run_figures(conn, base)
        after = await run_figures(conn, run_id)
    finally:
        await conn.close()
    return BaselineOutcome(
        compare(before, after, tolerance=tolerance, before_id=base, after_id=run_id)
    )


def store_run(
    url: str,
    report: Mapping[str, Any],
    *,
    baseline: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    provenance: Provenance | None = None,
) -> BaselineOutcome | None:
    """Save ``report`` to the results database at ``url``; compare it if asked to."""

    async def go() -> BaselineOutcome | None:
        await save_report(url, report, provenance)
        if baseline is None:
            return None
        return await _baseline(url, str(report["run_id"]), baseline, tolerance)

    return asyncio.run(go())
