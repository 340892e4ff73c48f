"""The post-run step of the store: save a run, then judge it against a baseline.

Used by :func:`squall.report.publish.publish` after the JSON files are on disk,
so a database that cannot be reached loses nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from squall.config import RESULTS_DB_OFF
from squall.report.compare import DEFAULT_TOLERANCE, Comparison
from squall.services import ProcessStartError
from squall.services.persistent import PersistentLockTimeout
from squall.store.location import (
    ResultsDbTooNew,
    connection,
    results_database,
    results_db_setting,
    setting_name,
)
from squall.store.migrations import known_schema_version
from squall.store.queries import (
    RunNotFound,
    compare_stored,
    mark_failed,
    previous_run,
    resolve_run,
)
from squall.store.records import Provenance
from squall.store.writer import save_report


@dataclass(frozen=True)
class BaselineOutcome:
    """What ``--baseline`` found: a comparison, or why there is none."""

    comparison: Comparison | None
    missing: str | None = None


async def _baseline(url: str, run_id: str, ref: str, tolerance: float) -> BaselineOutcome:
    async with connection(url) as conn:
        if ref == "last":
            found = await previous_run(conn, run_id)
            if found is None:
                return BaselineOutcome(
                    None, "no earlier run of the same scenarios is stored: nothing to compare"
                )
            base = found
        else:
            base = await resolve_run(conn, ref)
        comparison = await compare_stored(conn, base, run_id, tolerance=tolerance)
        if comparison.regressions:
            await mark_failed(conn, run_id)
        return BaselineOutcome(comparison)


def store_run(
    url: str,
    report: Mapping[str, Any],
    *,
    baseline: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    provenance: Provenance | None = None,
) -> BaselineOutcome | None:
    """Save ``report`` to the results database at ``url``; compare it if asked to (a run
    that regressed is then stored as failed, as its exit code says)."""

    async def go() -> BaselineOutcome | None:
        await save_report(url, report, provenance)
        if baseline is None:
            return None
        return await _baseline(url, str(report["run_id"]), baseline, tolerance)

    return asyncio.run(go())


class BaselineError(ValueError):
    """``--baseline`` names nothing a run could be compared with; the message says why."""


async def _resolve(url: str, ref: str) -> str:
    async with connection(url) as conn:
        await known_schema_version(conn)  # a newer squall's schema is not read
        return await resolve_run(conn, ref)


def check_baseline(
    ref: str | None,
    explicit: str | None,
    results_dir: Path,
    environ: Mapping[str, str],
    *,
    explicit_name: str = "--results-db",
) -> str | None:
    """Before a run: raise :class:`BaselineError` when ``--baseline ref`` cannot be judged
    afterwards, so a typo does not surface only once the whole run is over; return the
    baseline to compare with after the run.

    The results database being off is an error; a run id (not ``last``) must match a
    stored run, and is returned whole: a prefix resolved after the run could also match
    the run itself. A database that cannot be opened now is left to the post-run step,
    which keeps the run's files and says what failed (``ref`` is returned as given); so is
    one a newer squall wrote, which the post-run step refuses.
    ``explicit`` is named as ``explicit_name``, as :func:`check_results_db` names it.
    """
    if ref is None:
        return None
    if not ref.strip():
        raise BaselineError("--baseline is empty; give 'last' or a run id (`squall history`)")
    if results_db_setting(explicit, environ) == RESULTS_DB_OFF:
        setting = setting_name(explicit, explicit_name)
        raise BaselineError(
            f"--baseline needs the results database, but {setting} is 'off'; drop --baseline "
            f"or name a results database"
        )
    if ref == "last":
        return ref  # resolved after the run: the latest earlier run of the same scenarios
    try:
        with results_database(explicit, results_dir, environ=environ) as url:
            return asyncio.run(_resolve(url, ref))
    except RunNotFound as exc:
        raise BaselineError(f"--baseline {ref}: {exc}") from exc
    except asyncpg.UndefinedTableError as exc:  # a results database nothing was stored in yet
        raise BaselineError(
            f"--baseline {ref}: the results database holds no run yet; drop --baseline for "
            "this first run"
        ) from exc
    except (
        OSError,
        asyncpg.PostgresError,
        ProcessStartError,
        PersistentLockTimeout,
        ResultsDbTooNew,
    ):
        return ref
