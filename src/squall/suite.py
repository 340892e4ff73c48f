"""The golden-path suite: run scenarios under the resource monitor and judge them.

One result flows one way: the engine (or a race scenario) produces metrics,
the monitor adds the target's memory growth and CPU, the thresholds judge
them, and a :class:`SuiteReport` goes to the terminal summary and to disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import socket
import time
import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from squall.adapters.base import violations as adapter_violations
from squall.adapters.reference import ReferenceAdapter
from squall.adapters.registry import DEFAULT_ADAPTER
from squall.adapters.registry import load as load_adapter
from squall.checks.verdict import RaceTally
from squall.config import SCENARIO_METRICS, Config
from squall.engine import Scenario, run_scenario
from squall.engine.client import SUCCESS
from squall.engine.errors import describe
from squall.engine.series import ProgressView
from squall.interrupt import by_signal, deferred_stop
from squall.loopback import NotLoopback, require_loopback
from squall.metrics.recorder import ERRORS
from squall.metrics.result import Counter, Gauge, Metric, Rate, RunResult, metric_from_dict
from squall.metrics.thresholds import (
    OutcomeStatus,
    Threshold,
    ThresholdOutcome,
    ThresholdSet,
    Verdict,
    evaluate,
    parse_thresholds,
)
from squall.monitor import GENERATOR, TARGET, ResourceMonitor, standard_groups
from squall.monitor.report import MonitorReport
from squall.monitor.stats import MIN_LEAK_WINDOW_MIN
from squall.scenarios import (
    agent_context,
    db_race,
    long_conversation,
    platform_races,
    redis_locks,
    websocket_concurrency,
)
from squall.scenarios.target import TargetInfo, scaled
from squall.services import Endpoints
from squall.store.history_log import HistoryLog
from squall.urls import redact

REPORT_SCHEMA = "squall.report/1"


class TargetUnreachable(RuntimeError):
    """The target does not accept connections; the message says where and what to check."""


class UnknownScenario(ValueError):
    """A scenario name that the suite does not have."""


@dataclass(frozen=True)
class SuiteContext:
    """Everything a scenario may need about where it runs."""

    #: None when no selected scenario talks to a target (:attr:`SuiteEntry.uses_target`).
    target: TargetInfo | None
    database_url: str
    redis_url: str
    #: Prefix of the users, threads and keys this run creates, so runs never collide.
    tag: str = "run"
    progress: bool | Callable[[ProgressView], None] = True
    target_ports: tuple[int, ...] = ()
    #: Where per-scenario files (histories) go; None writes none.
    results_folder: Path | None = None
    #: The reference platform's own database (for read-only checks), when squall started it.
    platform_database_url: str | None = None
    #: The services, with the servers squall started: their PIDs for the monitor, and
    #: their restarts for the fault parts of ``platform_races``.
    services: Endpoints | None = None
    #: The history logs the scenario running now opened (:func:`_history`).
    histories: list[HistoryLog] = field(default_factory=list)

    def require_target(self) -> TargetInfo:
        """The target, for a scenario that talks to one."""
        if self.target is None:
            raise RuntimeError(
                "this scenario talks to the target, but the run has none: a scenario that "
                "does must be registered with uses_target=True"
            )
        return self.target


@dataclass
class ScenarioOutcome:
    """What one scenario measured and how it fared against its thresholds."""

    name: str
    metrics: dict[str, Metric]
    outcomes: list[ThresholdOutcome]
    result: dict[str, Any] | None = None
    monitor: MonitorReport | None = None
    notes: list[str] = field(default_factory=list)
    table: tuple[tuple[str, ...], list[tuple[str, ...]]] | None = None
    duration_s: float = 0.0
    #: The user stopped the run (Ctrl-C) during this scenario: the suite stops after it.
    stopped: bool = False
    #: The exception that ended the scenario before it could be judged; it fails the run.
    error: str | None = None
    #: False for a scenario the suite left out (its notes say why): nothing was measured.
    ran: bool = True
    #: The pytest test (node id) that ran it; None under ``squall run``.
    test: str | None = None

    @property
    def cut_short(self) -> bool:
        """Whether Ctrl-C or SIGTERM stopped the scenario's load before its end: what it
        measured is partial (unlike a stop once its load had ended)."""
        return self.result is not None and by_signal(self.result.get("interrupted_reason"))

    @property
    def verdict(self) -> Verdict:
        found = Verdict.of(self.outcomes)
        if self.error is None:
            return found
        return Verdict(found.passed, found.failed + 1, found.not_applicable)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "duration_s": self.duration_s,
            "verdict": "passed" if self.verdict.ok else "failed",
            "metrics": {name: metric.to_dict() for name, metric in self.metrics.items()},
            "thresholds": [o.to_dict() for o in self.outcomes],
            "notes": list(self.notes),
            "error": self.error,
            "ran": self.ran,
            "test": self.test,
            "result": self.result,
            "monitor": self.monitor.to_dict() if self.monitor is not None else None,
            "table": (
                {"columns": list(self.table[0]), "rows": [list(r) for r in self.table[1]]}
                if self.table is not None
                else None
            ),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScenarioOutcome:
        """The outcome :meth:`to_dict` wrote (``stopped`` is the run's, not written)."""
        table = data.get("table")
        return cls(
            name=str(data["name"]),
            metrics={name: metric_from_dict(m) for name, m in data.get("metrics", {}).items()},
            outcomes=[ThresholdOutcome.from_dict(t) for t in data.get("thresholds", [])],
            result=data.get("result"),
            monitor=MonitorReport.from_dict(data["monitor"]) if data.get("monitor") else None,
            notes=list(data.get("notes", [])),
            table=(
                (tuple(table["columns"]), [tuple(row) for row in table["rows"]]) if table else None
            ),
            duration_s=float(data.get("duration_s", 0.0)),
            error=data.get("error"),
            ran=bool(data.get("ran", True)),
            test=data.get("test"),
        )


@dataclass
class SuiteReport:
    run_id: str
    started_at: float
    scenarios: list[ScenarioOutcome] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    finished_at: float | None = None
    interrupted: bool = False

    @property
    def outcomes(self) -> list[ThresholdOutcome]:
        return [o for s in self.scenarios for o in s.outcomes]

    @property
    def verdict(self) -> Verdict:
        """The scenarios' verdicts added up (a crashed scenario counts as one failure)."""
        verdicts = [s.verdict for s in self.scenarios]
        return Verdict(
            sum(v.passed for v in verdicts),
            sum(v.failed for v in verdicts),
            sum(v.not_applicable for v in verdicts),
        )

    def to_dict(self) -> dict[str, Any]:
        verdict = self.verdict
        return {
            "schema": REPORT_SCHEMA,
            "run_id": self.run_id,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "interrupted": self.interrupted,
            "verdict": {
                "ok": verdict.ok,
                "passed": verdict.passed,
                "failed": verdict.failed,
                "not_applicable": verdict.not_applicable,
            },
            "config": self.config,
            "scenarios": [s.to_dict() for s in self.scenarios],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SuiteReport:
        """The report :meth:`to_dict` wrote (``report.json``)."""
        return cls(
            run_id=str(data["run_id"]),
            started_at=float(data["started_at"]),
            scenarios=[ScenarioOutcome.from_dict(s) for s in data.get("scenarios", [])],
            config=dict(data.get("config", {})),
            finished_at=data.get("finished_at"),
            interrupted=bool(data.get("interrupted", False)),
        )


Runner = Callable[[Config, SuiteContext], Awaitable[ScenarioOutcome]]


@dataclass(frozen=True)
class SuiteEntry:
    name: str
    run: Runner
    summary: str
    #: The ``[scenarios.<name>]`` parameters the scenario accepts, with their types
    #: (``int``, ``float``, ``str`` or ``bool`` are checked; anything else is passed as is).
    params: Mapping[str, Any] = field(default_factory=dict)
    #: Whether it talks to the target; a run of scenarios that all do not (they work on
    #: PostgreSQL and Redis directly) starts no platform and needs no ``--target``.
    uses_target: bool = True
    #: Whether it drives the reference platform's own protocol and API rather than going
    #: through the target's adapter; it is not run against a target whose adapter is not
    #: the reference one (``ReferenceAdapter`` or a subclass).
    reference_only: bool = False
    #: Checks the configured parameters' ranges before anything runs (ValueError naming the
    #: parameter); see :func:`param_check`.
    check: Callable[[Mapping[str, Any]], None] | None = None


#: Keyword arguments the suite passes itself; they are not configurable per scenario.
_SUITE_OWNED = frozenset(
    {
        "scale",
        "tag",
        "history",
        "target",
        "redis_url",
        "platform_database_url",
        "restart_redis",
        "restart_postgres",
        "platform_pid",
        "fencing",
        "prefix",
        "clock",
    }
)


def keyword_params(function: Callable[..., Any]) -> dict[str, Any]:
    """The keyword-only parameters of ``function`` a config may set, with their types."""
    hints = typing.get_type_hints(function)
    return {
        name: hints.get(name, Any)
        for name, p in inspect.signature(function).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in _SUITE_OWNED
    }


def param_check(
    run: Callable[..., Any], check: Callable[..., None]
) -> Callable[[Mapping[str, Any]], None]:
    """A :attr:`SuiteEntry.check`: ``check`` called with ``run``'s keyword defaults, overridden
    by the configured parameters."""
    defaults = {
        name: p.default
        for name, p in inspect.signature(run).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is not inspect.Parameter.empty
    }

    def checked(given: Mapping[str, Any]) -> None:
        check(**{**defaults, **given})

    return checked


#: The largest integer a scenario parameter takes: counts, sizes, amounts and milliseconds
#: past it overflow what PostgreSQL and Redis store (a 64-bit balance of writers x amount,
#: a key's expiry), so the run failed midway instead of being refused before it.
MAX_PARAM_INT = 2**31 - 1


def _param_type(annotation: Any) -> Any:
    """``int`` for ``int | None`` (TOML has no null: a value given is the type), else as is."""
    args = typing.get_args(annotation)
    if type(None) in args:
        given = [arg for arg in args if arg is not type(None)]
        if len(given) == 1:
            return given[0]
    return annotation


def _type_ok(value: Any, expected: Any) -> bool:
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected is str:
        return isinstance(value, str)
    return True


def at_own_size(config: Config, params: Mapping[str, object], size_params: Sequence[str]) -> bool:
    """Whether a load scenario runs at its own size: ``scale`` at least 1, none of its
    ``size_params`` among ``params``, no ``--duration`` cap."""
    return (
        config.run.scale >= 1.0
        and config.run.duration_s is None
        and not any(key in params for key in size_params)
    )


def _load_entry(
    name: str,
    build: Callable[..., Scenario],
    summary: str,
    *,
    capacity_at_full_scale: bool,
    size_params: tuple[str, ...] = (),
    own_thresholds: Mapping[str, Sequence[str]] | None = None,
) -> SuiteEntry:
    """A load scenario; ``own_thresholds`` are its checks beyond the shared defaults.

    With ``capacity_at_full_scale`` the capacity floors apply when it runs at its own size:
    ``scale`` at least 1, none of its ``size_params`` set, no ``--duration`` cap (a scenario
    resized or cut short is not sized for them; ``[scenarios.<name>] capacity`` decides
    otherwise)."""
    own = parse_thresholds(own_thresholds or {}, kinds=SCENARIO_METRICS.get(name, {}))

    async def run(config: Config, ctx: SuiteContext) -> ScenarioOutcome:
        params = dict(config.scenario_params(name))
        scenario = build(ctx.require_target(), scale=config.run.scale, tag=ctx.tag, **params)
        capacity = capacity_at_full_scale and at_own_size(config, params, size_params)
        return await run_load_scenario(config, ctx, scenario, capacity=capacity, own=own)

    return SuiteEntry(name, run, summary, keyword_params(build))


#: Every scenario ``squall run`` knows, in the order the full suite runs them.
SCENARIOS: dict[str, SuiteEntry] = {
    e.name: e
    for e in (
        _load_entry(
            websocket_concurrency.NAME,
            websocket_concurrency.build,
            "75 sockets × 15 messages, ramped in batches of 25",
            capacity_at_full_scale=True,
            size_params=("users", "messages"),
        ),
        _load_entry(
            agent_context.NAME,
            agent_context.build,
            "25 concurrent agent runs over 2,000+ character contexts",
            capacity_at_full_scale=False,
            own_thresholds={"context_large_enough": ["rate == 1"]},
        ),
        _load_entry(
            long_conversation.NAME,
            long_conversation.build,
            "20 conversations × 50 messages; context budget and memory growth",
            capacity_at_full_scale=False,
            own_thresholds={"context_within_budget": ["rate == 1"]},
        ),
    )
}


def _race_metrics(operations: int, tally: RaceTally) -> dict[str, Metric]:
    unprevented = float(tally.unprevented)
    violations = float(tally.violations)
    return {
        # No rate: the operations come in bursts around the scenario's setup and checks.
        "operations": Counter("operations", operations, None),
        "race_conditions_unprevented": Gauge(
            "race_conditions_unprevented", unprevented, unprevented, unprevented
        ),
        "violations": Gauge("violations", violations, violations, violations),
    }


def _history(ctx: SuiteContext, name: str) -> HistoryLog | None:
    if ctx.results_folder is None:
        return None
    with contextlib.suppress(OSError):  # the log keeps the error of opening its file
        ctx.results_folder.mkdir(parents=True, exist_ok=True)
    log = HistoryLog(ctx.results_folder / f"{name}.history.jsonl")
    ctx.histories.append(log)
    return log


def _unwritten_histories(logs: Sequence[HistoryLog]) -> list[str]:
    """A note for each history file that could not be written (it was removed)."""
    from squall.report.files import os_problem  # squall.report imports this module

    return [
        f"{log.path.name} could not be written ({os_problem(log.error)}) and was removed; "
        "the checkers judged the histories in memory, so the verdicts stand. Free space, or "
        "pass --results-dir a folder you can write to"
        for log in logs
        if log.error is not None
    ]


#: What db_race must show whatever its thresholds (docs/races.md): debits were committed,
#: and naive read-modify-write, when it ran, was caught losing updates.
RACE_DEBITED = Threshold.parse("operations", "count > 0")
NAIVE_CAUGHT = Threshold.parse("naive_caught", "value == 1")


def _own_checks(
    checks: Sequence[Threshold],
    metrics: Mapping[str, Metric],
    scenario: str,
    why: Mapping[str, str],
) -> list[ThresholdOutcome]:
    """A race scenario's own ``checks``, each failure followed by what to change (``why``,
    by metric): without them a run that showed no race passed, its checkers having nothing
    to judge."""
    return [
        outcome
        if outcome.status is not OutcomeStatus.FAILED
        else replace(outcome, diagnostic=f"{outcome.diagnostic}: {why[outcome.metric]}")
        for outcome in evaluate(checks, metrics, scenario)
    ]


def race_shown(metrics: Mapping[str, Metric]) -> list[ThresholdOutcome]:
    """db_race's own checks (:data:`RACE_DEBITED`, and :data:`NAIVE_CAUGHT` when
    ``naive_caught`` was recorded). Without them a run whose debits were all refused (an
    ``initial_balance`` below ``amount``), or whose naive strategy lost nothing, passed."""
    checks = [RACE_DEBITED] + ([NAIVE_CAUGHT] if "naive_caught" in metrics else [])
    why = {
        "operations": "no debit committed, so the checkers judged nothing; is initial_balance "
        "at least amount?",
        "naive_caught": "naive read-modify-write lost no update the checkers could see, so "
        "they were not shown to catch one; more writers, a larger initial_balance or more "
        "max_escalations give the race room",
    }
    return _own_checks(checks, metrics, "db_race", why)


#: redis_locks' own check: without fencing, the lock checker named an overlap for every
#: stale contender (the race the scenario exists to show).
UNFENCED_CAUGHT = Threshold.parse("unfenced_caught", "value == 1")


def locks_shown(metrics: Mapping[str, Metric]) -> list[ThresholdOutcome]:
    """redis_locks' own check (:data:`UNFENCED_CAUGHT`). Without it a run whose unfenced
    contenders never overlapped (``stale = []``) passed."""
    why = {
        "unfenced_caught": "without fencing the lock checker named fewer overlaps than stale "
        "contenders, so it was not shown to catch one; give stale at least one contender "
        "index (the default is [0])"
    }
    return _own_checks([UNFENCED_CAUGHT], metrics, "redis_locks", why)


#: platform_races' own checks: some run ended (an ``agent_completed`` reached a socket),
#: and some checker had something to judge.
RUNS_ENDED = Threshold.parse("runs_ended", "count > 0")
CHECKERS_APPLICABLE = Threshold.parse("checkers_applicable", "count > 0")


def platform_shown(metrics: Mapping[str, Metric]) -> list[ThresholdOutcome]:
    """platform_races' own checks (:data:`RUNS_ENDED`, :data:`CHECKERS_APPLICABLE`).
    Without them a platform that refused every message (``insufficient_credits``, say),
    or a run whose every checker was not applicable, passed."""
    why = {
        "runs_ended": "no run ended, so the checkers judged no run; was every message "
        "refused (see the notes and errors: credits, rate limits)?",
        "checkers_applicable": "every checker was not applicable, so nothing was judged; "
        "run more parts, against the platform squall starts",
    }
    return _own_checks([RUNS_ENDED, CHECKERS_APPLICABLE], metrics, platform_races.NAME, why)


async def _run_db_race(config: Config, ctx: SuiteContext) -> ScenarioOutcome:
    started = time.monotonic()
    params = dict(config.scenario_params("db_race"))
    notes = []
    writers = params.pop("writers", None)
    if writers is None:
        asked = max(2, scaled(20, config.run.scale))
        writers = min(asked, db_race.MAX_RACE_WRITERS)
        if asked > writers:
            notes.append(
                f"writers capped at {writers} (scale {config.run.scale:g} asks for {asked}): "
                f"escalation doubles them, up to {db_race.MAX_WRITERS} connections"
            )
    history = _history(ctx, "db_race")
    try:
        report = await db_race.run_db_race(
            ctx.database_url, writers=int(writers), history=history, **params
        )
    finally:
        if history is not None:
            history.close()
    operations = sum(s.ops_ok for s in report.strategies)
    metrics = _race_metrics(operations, report.tally)
    naive = next((s for s in report.strategies if not s.strategy.safe), None)
    if naive is not None:
        notes.append(
            f"naive read-modify-write caught losing {naive.lost_updates} update(s)"
            if naive.caught
            else "naive read-modify-write was NOT caught losing updates"
        )
        caught = 1.0 if naive.caught else 0.0
        metrics["naive_caught"] = Gauge("naive_caught", caught, caught, caught)
    thresholds = config.thresholds_for("db_race")
    return ScenarioOutcome(
        name="db_race",
        metrics=metrics,
        outcomes=evaluate(thresholds, metrics, "db_race") + race_shown(metrics),
        result=dict(report.to_dict()),
        notes=notes,
        table=(tuple(db_race.TABLE_COLUMNS), db_race.table_rows(report)),
        duration_s=time.monotonic() - started,
    )


async def _run_redis_locks(config: Config, ctx: SuiteContext) -> ScenarioOutcome:
    started = time.monotonic()
    params = dict(config.scenario_params("redis_locks"))
    history = _history(ctx, "redis_locks")
    reports = []
    try:
        for fencing in (False, True):
            reports.append(
                await redis_locks.run_redis_locks(
                    ctx.redis_url,
                    fencing=fencing,
                    prefix=f"{ctx.tag}:locks:{'fenced' if fencing else 'unfenced'}",
                    history=history,
                    **params,
                )
            )
    finally:
        if history is not None:
            history.close()
    unfenced, fenced = reports
    metrics = _race_metrics(fenced.acquired + unfenced.acquired, fenced.tally)
    caught = float(unfenced.overlaps >= max(1, len(unfenced.stale)))
    metrics["unfenced_caught"] = Gauge("unfenced_caught", caught, caught, caught)
    notes = [
        f"without fencing: {unfenced.overlaps} overlapping critical section(s) named "
        f"by the lock checker, {unfenced.writes_accepted} write(s) accepted",
        f"with fencing: {fenced.writes_rejected} stale write(s) rejected; "
        f"lock checker {'passed' if fenced.verdict.valid else 'FAILED'}",
    ]
    columns: tuple[str, ...] = (
        "fencing",
        "acquired",
        "contended",
        "overlaps",
        "accepted",
        "rejected",
        "verdict",
    )
    rows: list[tuple[str, ...]] = [
        (
            "on" if r.fencing else "off",
            str(r.acquired),
            str(r.contended_acquires),
            str(r.overlaps),
            str(r.writes_accepted),
            str(r.writes_rejected),
            "valid" if r.verdict.valid else "overlaps (expected: no fencing)",
        )
        for r in reports
    ]
    return ScenarioOutcome(
        name="redis_locks",
        metrics=metrics,
        outcomes=evaluate(config.thresholds_for("redis_locks"), metrics, "redis_locks")
        + locks_shown(metrics),
        result={"unfenced": unfenced.to_dict(), "fenced": fenced.to_dict()},
        notes=notes,
        table=(columns, rows),
        duration_s=time.monotonic() - started,
    )


SCENARIOS["db_race"] = SuiteEntry(
    "db_race",
    _run_db_race,
    "20 concurrent debits per strategy against PostgreSQL",
    keyword_params(db_race.run_db_race),
    uses_target=False,
    check=param_check(db_race.run_db_race, db_race.check_params),
)
SCENARIOS["redis_locks"] = SuiteEntry(
    "redis_locks",
    _run_redis_locks,
    "TTL lock contenders with and without fencing tokens",
    keyword_params(redis_locks.run_redis_locks),
    uses_target=False,
    check=param_check(redis_locks.run_redis_locks, redis_locks.check_params),
)


async def _run_platform_races(config: Config, ctx: SuiteContext) -> ScenarioOutcome:
    started = time.monotonic()
    params = dict(config.scenario_params(platform_races.NAME))
    history = _history(ctx, platform_races.NAME)
    # Only a platform squall started has services the scenario may read, delete or restart.
    own = ctx.platform_database_url is not None
    target = ctx.require_target()
    try:
        report = await platform_races.run_platform_races(
            target,
            tag=f"{ctx.tag}-pr",
            scale=config.run.scale,
            redis_url=ctx.redis_url if own else None,
            platform_database_url=ctx.platform_database_url,
            restart_redis=ctx.services.restart_redis if own and ctx.services else None,
            restart_postgres=ctx.services.restart_postgres if own and ctx.services else None,
            platform_pid=target.pids[0] if own and target.pids else None,
            history=history,
            **params,
        )
    finally:
        if history is not None:
            history.close()
    metrics = report.metrics()
    metrics["runs_ended"] = Counter("runs_ended", report.response_time.count, None)
    applicable = sum(v.valid is not None for v in report.verdicts)
    metrics["checkers_applicable"] = Counter("checkers_applicable", applicable, None)
    return ScenarioOutcome(
        name=platform_races.NAME,
        metrics=metrics,
        outcomes=evaluate(config.thresholds_for(platform_races.NAME), metrics, platform_races.NAME)
        + platform_shown(metrics),
        result=dict(report.to_dict()),
        notes=report.notes(),
        table=(platform_races.TABLE_COLUMNS, report.table_rows()),
        duration_s=time.monotonic() - started,
    )


SCENARIOS[platform_races.NAME] = SuiteEntry(
    platform_races.NAME,
    _run_platform_races,
    "concurrent runs, resumes, isolation, takeover, Redis, PostgreSQL and worker faults and "
    "single_session through the platform",
    keyword_params(platform_races.run_platform_races),
    reference_only=True,
    check=param_check(platform_races.run_platform_races, platform_races.check_params),
)


def select(names: Sequence[str]) -> list[SuiteEntry]:
    """The entries for ``names`` (all when empty) in the order given, each once (a scenario
    named twice would run twice under one name, and its results overwrite each other and
    could not be stored); or :class:`UnknownScenario`."""
    if not names:
        return list(SCENARIOS.values())
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        # `--set run.scenarios=[db_race]` is not TOML (no quotes), so it arrives as one name.
        bracketed = any(n.startswith("[") for n in unknown)
        hint = (
            '; a list in --set needs quoted names, run.scenarios=["db_race"], or write '
            "them bare with commas, run.scenarios=db_race,redis_locks"
            if bracketed
            else ""
        )
        raise UnknownScenario(
            f"unknown scenario(s) {', '.join(unknown)} "
            f"(--scenario or [run] scenarios); choose from {', '.join(SCENARIOS)}, or name "
            f"none to run them all{hint}"
        )
    return [SCENARIOS[n] for n in dict.fromkeys(names)]


def uses_target(entries: Sequence[SuiteEntry]) -> bool:
    """Whether any of ``entries`` talks to the target (so the run needs one)."""
    return any(entry.uses_target for entry in entries)


def check_params(config: Config) -> None:
    """Raise :class:`UnknownScenario` for a ``[scenarios.<name>]`` key nobody reads."""
    for name, scenario in config.scenarios.items():
        entry = SCENARIOS.get(name)
        if entry is None:
            raise UnknownScenario(
                f"[scenarios.{name}] names no scenario; choose from {', '.join(SCENARIOS)}"
            )
        for key, value in scenario.params.items():
            if key not in entry.params:
                accepted = ", ".join(entry.params) or "none"
                raise UnknownScenario(
                    f"[scenarios.{name}] has no parameter {key!r}; it accepts: {accepted}"
                )
            expected = _param_type(entry.params[key])
            if not _type_ok(value, expected):
                shown = str(value).lower() if isinstance(value, bool) else repr(value)
                raise UnknownScenario(
                    f"[scenarios.{name}] {key} = {shown}: expected {expected.__name__}"
                )
            if expected is float and not math.isfinite(value):
                raise UnknownScenario(
                    f"[scenarios.{name}] {key} = {value!r}: expected a finite number > 0"
                )
            if expected in (int, float):
                # Counts, sizes and durations are positive; caps (``max_...``) may be 0.
                zero_ok = key.startswith("max_")
                if value < 0 or (value == 0 and not zero_ok):
                    bound = ">= 0" if zero_ok else "> 0"
                    raise UnknownScenario(
                        f"[scenarios.{name}] {key} = {value!r}: expected {expected.__name__} "
                        f"{bound}"
                    )
                if expected is int and value > MAX_PARAM_INT:
                    raise UnknownScenario(
                        f"[scenarios.{name}] {key} = {value!r}: expected int at most "
                        f"{MAX_PARAM_INT}"
                    )
        if entry.check is not None and scenario.params:
            try:
                entry.check(scenario.params)
            except ValueError as exc:
                raise UnknownScenario(f"[scenarios.{name}] {exc}") from None


#: The check a load scenario that measured nothing fails (:func:`nothing_measured`).
SOMETHING_MEASURED = Threshold.parse("iterations", "count > 0")


def nothing_measured(
    scenario: str, *, iterations: int, answered: int, interrupted: int, errors: int
) -> list[ThresholdOutcome]:
    """A failed ``iterations count > 0`` when no iteration of a load scenario ended
    (returned or raised) and no message it sent was answered (``answered``: the samples of
    ``success``, one per message judged); otherwise nothing.

    Its thresholds would then all be not applicable (no latency, no rate has a sample)
    and the run would pass: a target that accepts connections but never answers, with
    ``--duration`` ending the run before any connect timed out, did, whether or not it
    greeted each socket (a ``hello`` is a message received, but answers nothing).
    """
    if iterations or answered:
        return []
    if errors:
        why = f"{errors} error(s), listed above"
    elif interrupted:
        why = (
            f"{interrupted} iteration(s) still waiting when the run ended (a connect or an "
            "answer); is the target answering, and does it speak the adapter's protocol? "
            "A longer --duration lets connects time out and name the error"
        )
    else:
        why = "no iteration started; check the scenario's users and duration"
    (failed,) = evaluate(
        [SOMETHING_MEASURED], {"iterations": Counter("iterations", 0, None)}, scenario
    )
    return [
        replace(
            failed,
            diagnostic=f"{failed.diagnostic}: no iteration ended and no message was "
            f"answered, so nothing was measured: {why}",
        )
    ]


def check_reachable(url: str, timeout: float = 3.0, *, option: str = "--target") -> None:
    """Raise :class:`TargetUnreachable` unless a TCP connection to ``url`` succeeds (and
    ``url`` names this machine: nothing is sent elsewhere); the message names ``option``."""
    try:
        require_loopback(url, "the target URL")
    except NotLoopback as exc:
        raise TargetUnreachable(str(exc)) from None
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme in ("wss", "https") else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as exc:
        raise TargetUnreachable(
            f"target {redact(url)} is unreachable: {exc.strerror or exc}; "
            f"check that it runs and that {option} names its host and port"
        ) from exc


def monitor_gauges(report: MonitorReport) -> dict[str, Metric]:
    """The target's memory growth and CPU as gauges (CPU as % of the whole machine)."""
    values = report.gauges()
    gauges: dict[str, Metric] = {}
    if "memory_growth_mb" in values:
        growth = values["memory_growth_mb"]
        gauges["memory_growth_mb"] = Gauge("memory_growth_mb", growth, growth, growth)
    if "cpu_avg_percent" in values:
        cpu = values["cpu_avg_percent"]
        gauges["cpu_avg_percent"] = Gauge("cpu_avg_percent", cpu, cpu, cpu)
    return gauges


def _monitor(config: Config, ctx: SuiteContext) -> ResourceMonitor:
    groups = standard_groups(
        target_pids=ctx.require_target().pids or config.monitor.pids,
        target_ports=ctx.target_ports or config.monitor.ports,
        postgres_pid=ctx.services.postgres_pid if ctx.services else None,
        redis_pid=ctx.services.redis_pid if ctx.services else None,
    )
    return ResourceMonitor(groups, interval_s=config.monitor.interval_s)


def sampling_note(report: MonitorReport) -> str | None:
    """One line on the monitor samples the OS refused altogether, if any were."""
    if not report.failed_samples:
        return None
    taken = max((g.stats.samples for g in report.groups.values()), default=0)
    return (
        f"monitor: {report.failed_samples} of {report.failed_samples + taken} samples could "
        f"not be read ({report.sample_error}); CPU and memory leave those ticks out"
    )


def memory_note(report: MonitorReport, group: str = TARGET) -> str | None:
    """One line on the group's memory: start/peak/end, growth and the leak slope."""
    found = report.groups.get(group)
    if found is None:
        # A target squall did not start, given neither PIDs nor ports: its CPU and memory
        # thresholds are not applicable, and this says why.
        return (
            f"{group}: not monitored (squall did not start it and neither monitor.pids nor "
            "monitor.ports names it), so its CPU and memory were not measured; give its PIDs "
            "or listening ports in monitor.pids or monitor.ports"
        )
    if found.stats.samples == 0:
        return None
    stats = found.stats
    if not found.measured:
        return (
            f"{group}: no process found in any of {stats.samples} monitor samples, so its CPU "
            "and memory were not measured; give its PIDs or listening ports in monitor.pids "
            "or monitor.ports"
        )
    line = (
        f"{group} memory: {stats.start_mb:.1f} MB start, {stats.peak_mb:.1f} MB peak, "
        f"{stats.end_mb:.1f} MB end ({stats.growth_mb:+.1f} MB)"
    )
    if found.series and found.series[-1].processes == 0:
        line += ", at its last sample with a process: none of it was left at the end"
    leak = stats.leak
    if leak is not None:
        if leak.probable_leak:
            verdict = "probable leak"
        elif stats.duration_s < MIN_LEAK_WINDOW_MIN * 60:
            verdict = f"{stats.duration_s:.0f} s is too short to judge a leak"
        else:
            verdict = "no significant growth"
        line += (
            f"; slope {leak.slope_mb_per_min:+.2f} MB/min "
            f"(95 % CI {leak.ci95_low:+.2f}..{leak.ci95_high:+.2f}, {verdict})"
        )
    return line


def generator_leak_note(report: MonitorReport) -> str | None:
    """One line when squall's own memory grew like a leak during the run: a long soak would
    end in the generator running out of memory, not the target."""
    found = report.groups.get(GENERATOR)
    leak = found.stats.leak if found is not None else None
    if leak is None or not leak.probable_leak:
        return None
    return f"squall's own {memory_note(report, GENERATOR)}"


async def run_load_scenario(
    config: Config,
    ctx: SuiteContext,
    scenario: Scenario,
    *,
    capacity: bool,
    own: ThresholdSet | None = None,
) -> ScenarioOutcome:
    """Run an engine scenario under the monitor and judge it."""
    started = time.monotonic()
    monitor = _monitor(config, ctx)
    await monitor.start()
    # A Ctrl-C once the load is over (the engine notes one while its workers exit, this
    # scenario's deferral one while it is judged) stops the suite after this scenario,
    # whose measurements are whole, instead of losing them.
    after_load: list[str] = []
    try:
        result = await run_scenario(
            scenario,
            processes=config.run.processes,
            progress=ctx.progress,
            deadline_s=config.run.duration_s,
            stopped_after_load=after_load,
        )
    except BaseException:
        await monitor.stop()
        raise
    with deferred_stop() as judging_stopped:
        report = await monitor.stop()

        def stopped_late() -> bool:
            return bool(after_load) or judging_stopped()

        return _judged(config, ctx, scenario, result, report, capacity, own, started, stopped_late)


def _judged(
    config: Config,
    ctx: SuiteContext,
    scenario: Scenario,
    result: RunResult,
    report: MonitorReport,
    capacity: bool,
    own: ThresholdSet | None,
    started: float,
    stopped_late: Callable[[], bool],
) -> ScenarioOutcome:
    metrics: dict[str, Metric] = dict(result.metrics)
    metrics.update(monitor_gauges(report))
    # ``violations`` = sequence gaps + isolation leaks the chats saw; absent (so its
    # threshold is not applicable) when the adapter has neither notion or nothing chatted.
    target = ctx.require_target()
    capabilities = load_adapter(target.adapter).capabilities
    counts = {name: m.count for name, m in metrics.items() if isinstance(m, Counter)}
    seen = adapter_violations(capabilities, counts)
    if seen is not None:
        metrics["violations"] = Gauge("violations", float(seen), float(seen), float(seen))
    thresholds = config.thresholds_for(scenario.name, capacity=capacity)
    if own is not None:
        # The scenario's own checks, unless the config says otherwise for that metric.
        configured = config.scenarios.get(scenario.name)
        overridden = set(configured.thresholds.rules) if configured is not None else set()
        thresholds = ThresholdSet(
            {**{m: t for m, t in own.rules.items() if m not in overridden}, **thresholds.rules}
        )
    outcomes = evaluate(thresholds, metrics, scenario.name)
    stopped = by_signal(result.interrupted_reason)
    if not stopped:
        success = metrics.get(SUCCESS)
        outcomes.extend(
            nothing_measured(
                scenario.name,
                iterations=result.count("iterations"),
                answered=success.total if isinstance(success, Rate) else 0,
                interrupted=result.count("interrupted_iterations"),
                errors=result.count(ERRORS),
            )
        )
    notes = capabilities.not_applicable(target.adapter)
    notes.extend(n for n in (sampling_note(report), memory_note(report)) if n is not None)
    generator_leak = generator_leak_note(report)
    if generator_leak is not None:
        notes.append(generator_leak)
    if result.generator.saturated:
        notes.append(result.generator.warning or "load generator saturated")
    if result.interrupted:
        notes.append(f"interrupted ({result.interrupted_reason}): partial results")
    if stopped_late():  # a --duration run reads interrupted by its deadline besides
        notes.append("interrupted once its load had ended: its results are whole")
    return ScenarioOutcome(
        name=scenario.name,
        metrics=metrics,
        outcomes=outcomes,
        result=result.to_dict(),
        monitor=report,
        notes=notes,
        duration_s=time.monotonic() - started,
        stopped=stopped or stopped_late(),
    )


async def run_suite(
    config: Config,
    ctx: SuiteContext,
    *,
    run_id: str,
    on_scenario: Callable[[ScenarioOutcome], None] | None = None,
    config_snapshot: Mapping[str, Any] | None = None,
    report: SuiteReport | None = None,
) -> SuiteReport:
    """Run the selected scenarios one after another; Ctrl-C keeps what finished.

    A scenario that raises is recorded as failed with its error, and the suite
    goes on: the scenarios already measured are still reported and written. Given
    ``report``, the outcomes go into it as they come, so a caller whose event loop ends on
    a Ctrl-C (asyncio's runner then drops the coroutine's result) still holds them.
    """
    entries = select(config.run.scenarios)
    if report is None:
        report = SuiteReport(run_id, time.time(), config=dict(config_snapshot or {}))
    try:
        for entry in entries:
            outcome = not_run_here(entry, config, ctx) or await _run_entry(entry, config, ctx)
            report.scenarios.append(outcome)
            if on_scenario is not None:
                on_scenario(outcome)
            if outcome.stopped:
                report.interrupted = True
                break
    except (KeyboardInterrupt, asyncio.CancelledError):
        report.interrupted = True
    finally:
        report.finished_at = time.time()
    return report


def scenario_error(exc: Exception) -> str:
    """A scenario's ``error`` for the exception that ended it: its type, message and where
    it was raised."""
    return f"{type(exc).__name__}: {describe(exc)}"


async def _run_entry(entry: SuiteEntry, config: Config, ctx: SuiteContext) -> ScenarioOutcome:
    """Run one scenario; one that raises is an outcome with its error."""
    started = time.monotonic()
    ctx.histories.clear()
    try:
        outcome = await entry.run(config, ctx)
    except Exception as exc:
        error = scenario_error(exc)
        outcome = ScenarioOutcome(
            name=entry.name,
            metrics={},
            outcomes=[],
            notes=[f"scenario raised {error}; its measurements are lost"],
            duration_s=time.monotonic() - started,
            error=error,
        )
    outcome.notes.extend(_unwritten_histories(ctx.histories))
    return outcome


def not_run_here(entry: SuiteEntry, config: Config, ctx: SuiteContext) -> ScenarioOutcome | None:
    """The outcome of a reference-only scenario against another protocol's target: not run,
    its thresholds not applicable, a note saying why; None for a scenario that can run."""
    adapter = ctx.target.adapter if ctx.target is not None else DEFAULT_ADAPTER
    if entry.reference_only and not isinstance(load_adapter(adapter), ReferenceAdapter):
        return _not_run_for_adapter(config, entry.name, adapter)
    return None


def _not_run_for_adapter(config: Config, name: str, adapter: str) -> ScenarioOutcome:
    return ScenarioOutcome(
        name=name,
        metrics={},
        outcomes=evaluate(config.thresholds_for(name), {}, name),
        notes=[
            f"not run: {name} drives the reference platform's own protocol and API, while "
            f"this target is spoken to through adapter {adapter!r}; its thresholds are not "
            "applicable"
        ],
        duration_s=0.0,
        ran=False,
    )
