"""A run's report, flattened into the rows of the results database (pure).

Input is the ``report.json`` dictionary (:meth:`squall.suite.SuiteReport.to_dict`),
so a report read back from disk can be stored exactly like a fresh one. Output
is one :class:`RunRecord`: the session row and, per child table, its column
names and row tuples, ready for a batched insert. Which scenario fills which
table is described in ``docs/results.md``; in short:

- ``performance_metrics``: every metric of every scenario;
- ``concurrent_test_users``: the user count of every scenario (virtual users,
  db_race writers, redis_locks contenders);
- ``concurrent_user_operations``: operation counts by kind (load counters and
  rates, db_race debits per strategy, redis_locks acquires and writes);
- ``websocket_coordination``: connection and delivery figures of load scenarios;
- ``shared_resources``: contention on the shared resource of race scenarios
  (db_race's account row per strategy, redis_locks' lock per fencing mode);
- ``race_condition_events``: detected / prevented counts of every race tally,
  and one violation event per piece of checker evidence;
- ``user_isolation_test_data``: verdicts of ``isolation`` checkers;
- ``resource_samples``: the monitor's series per process group.
"""

from __future__ import annotations

import json
import platform
import socket
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from squall.report.run_state import nothing_ran

Row = tuple[Any, ...]


class ReportShapeError(ValueError):
    """A report dictionary lacks a field the store needs; the message names it."""


@dataclass(frozen=True)
class Provenance:
    """Where a run happened: versions and host, stored with the session."""

    squall_version: str
    python_version: str
    platform: str
    host: str

    @classmethod
    def current(cls) -> Provenance:
        from squall import __version__

        return cls(
            squall_version=__version__,
            python_version=sys.version.split()[0],
            platform=platform.platform(),
            host=socket.gethostname(),
        )


@dataclass(frozen=True)
class Table:
    """Rows for one child table; every row starts with the session id, filled in on write."""

    name: str
    columns: tuple[str, ...]
    rows: list[Row] = field(default_factory=list)


@dataclass(frozen=True)
class RunRecord:
    """Everything one run writes: the session's values and the child tables' rows."""

    run_id: str
    session: dict[str, Any]
    tables: tuple[Table, ...]

    def table(self, name: str) -> Table:
        for table in self.tables:
            if table.name == name:
                return table
        raise KeyError(f"no table {name!r}; have {[t.name for t in self.tables]}")


SESSION_COLUMNS = (
    "run_id",
    "report_schema",
    "scenario_set",
    "scenarios",
    "config",
    "squall_version",
    "python_version",
    "platform",
    "host",
    "started_at",
    "finished_at",
    "interrupted",
    "verdict",
    "thresholds_passed",
    "thresholds_failed",
    "thresholds_not_applicable",
)

METRIC_COLUMNS = (
    "scenario",
    "metric",
    "kind",
    "count",
    "min",
    "mean",
    "p50",
    "p90",
    "p95",
    "p99",
    "p999",
    "max",
    "rate",
    "per_second",
    "value",
    "histogram",
)
#: A trend's statistics: NULL when it has no samples.
_TREND_STATISTICS = frozenset(("min", "mean", "p50", "p90", "p95", "p99", "p999", "max"))
RACE_COLUMNS = ("scenario", "source", "kind", "count", "checker", "message", "evidence")
USER_COLUMNS = ("scenario", "users", "peak_users", "processes", "model", "workload")
OPERATION_COLUMNS = ("scenario", "operation", "ok", "failed", "per_second")
COORDINATION_COLUMNS = (
    "scenario",
    "connections",
    "connect_p95_s",
    "messages_sent",
    "messages_received",
    "delivery_rate",
    "success_rate",
    "errors",
)
RESOURCE_COLUMNS = (
    "scenario",
    "resource",
    "mode",
    "contenders",
    "acquired",
    "contended",
    "conflicts",
    "retries",
    "violations",
    "details",
)
ISOLATION_COLUMNS = ("scenario", "source", "checker", "valid", "summary", "counts", "evidence")
SAMPLE_COLUMNS = (
    "scenario",
    "process_group",
    "t",
    "rss_mb",
    "cpu_percent",
    "threads",
    "open_files",
    "sockets",
    "processes",
)


def scenario_set(names: Sequence[str]) -> str:
    """The key runs are compared by: the sorted, comma-joined scenario names."""
    return ",".join(sorted(set(names)))


def _need(data: Mapping[str, Any], key: str, what: str) -> Any:
    try:
        return data[key]
    except KeyError:
        raise ReportShapeError(
            f"{what} has no {key!r} field (it has {sorted(data)}); "
            "pass the dictionary of SuiteReport.to_dict() / report.json"
        ) from None


def _time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(float(value), tz=UTC)


def _json(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def _verdict_word(report: Mapping[str, Any]) -> str:
    if report.get("interrupted"):
        return "interrupted"
    ok = _need(report, "verdict", "report").get("ok")
    if ok and nothing_ran(report):
        return "nothing ran"  # nothing was judged: not passed, though nothing failed
    return "passed" if ok else "failed"


def session_values(report: Mapping[str, Any], provenance: Provenance) -> dict[str, Any]:
    scenarios = [str(_need(s, "name", "scenario")) for s in _need(report, "scenarios", "report")]
    verdict = _need(report, "verdict", "report")
    values = (
        str(_need(report, "run_id", "report")),
        str(report.get("schema", "")),
        scenario_set(scenarios),
        scenarios,
        _json(report.get("config", {})),
        provenance.squall_version,
        provenance.python_version,
        provenance.platform,
        provenance.host,
        _time(_need(report, "started_at", "report")),
        _time(report.get("finished_at")),
        bool(report.get("interrupted", False)),
        _verdict_word(report),
        int(verdict.get("passed", 0)),
        int(verdict.get("failed", 0)),
        int(verdict.get("not_applicable", 0)),
    )
    return dict(zip(SESSION_COLUMNS, values, strict=True))


def _metric_row(scenario: str, name: str, m: Mapping[str, Any]) -> Row:
    kind = str(_need(m, "type", f"metric {name!r} of {scenario!r}"))
    count: int | None
    if kind == "rate":
        count = int(m.get("total", 0))
    elif kind in ("trend", "counter"):
        count = int(m.get("count", 0))
    else:
        count = None
    empty_trend = kind == "trend" and not count
    empty_rate = kind == "rate" and not count

    def get(key: str) -> Any:
        # A trend or rate with no samples has no statistics: NULL, whatever the report
        # holds (an older report has 0 there).
        if (empty_trend and key in _TREND_STATISTICS) or (empty_rate and key == "rate"):
            return None
        return m.get(key)

    return (
        scenario,
        name,
        kind,
        count,
        get("min"),
        get("mean"),
        get("p50"),
        get("p90"),
        get("p95"),
        get("p99"),
        get("p999"),
        get("max"),
        get("rate"),
        get("per_second"),
        get("value"),
        get("encoded"),
    )


def _is_verdict(value: Mapping[str, Any]) -> bool:
    return {"checker", "valid", "summary", "counts", "evidence"} <= value.keys()


def _label(item: Any, index: int) -> str:
    if isinstance(item, Mapping):
        for key in ("strategy", "name", "checker"):
            if isinstance(item.get(key), str):
                return str(item[key])
        if isinstance(item.get("number"), int):
            return f"round {item['number']}"
    return str(index)


def walk(value: Any, path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every dictionary inside ``value`` with a readable path ("strategies/naive/...")."""
    if isinstance(value, Mapping):
        yield path, value
        for key, child in value.items():
            yield from walk(child, f"{path}/{key}" if path else str(key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            label = _label(child, index)
            yield from walk(child, f"{path}/{label}" if path else label)


def _leaf_tallies(result: Any) -> list[tuple[str, Mapping[str, Any]]]:
    """Race tallies with no tally below them (db_race strategies, redis_locks modes)."""
    found = [(p, d) for p, d in walk(result) if isinstance(d.get("tally"), Mapping)]
    return [
        (path, d["tally"])
        for path, d in found
        if not any(other != path and other.startswith(path + "/") for other, _ in found)
        and not (path == "" and len(found) > 1)
    ]


def race_rows(scenario: str, result: Any) -> list[Row]:
    rows: list[Row] = []
    for path, tally in _leaf_tallies(result):
        source = path or scenario
        for kind in ("detected", "prevented"):
            count = int(tally.get(kind, 0))
            if count:
                rows.append((scenario, source, kind, count, None, None, _json(dict(tally))))
    for path, verdict in walk(result):
        if not _is_verdict(verdict) or verdict["valid"] is not False:
            continue
        evidence = list(verdict["evidence"])
        for item in evidence:
            rows.append(
                (
                    scenario,
                    path,
                    "violation",
                    1,
                    str(verdict["checker"]),
                    str(item.get("message", "")),
                    _json(item),
                )
            )
        rest = int(verdict["counts"].get("violations", 0)) - len(evidence)
        if rest > 0:
            rows.append(
                (
                    scenario,
                    path,
                    "violation",
                    rest,
                    str(verdict["checker"]),
                    f"{rest} more violation(s) beyond the evidence kept: {verdict['summary']}",
                    _json({"counts": verdict["counts"]}),
                )
            )
    return rows


def isolation_rows(scenario: str, result: Any) -> list[Row]:
    return [
        (
            scenario,
            path,
            str(v["checker"]),
            v["valid"],
            str(v["summary"]),
            _json(v["counts"]),
            _json(v["evidence"]),
        )
        for path, v in walk(result)
        if _is_verdict(v) and str(v["checker"]).startswith("isolation")
    ]


def _metric(s: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    found = s.get("metrics", {}).get(name)
    return found if isinstance(found, Mapping) else {}


def user_rows(s: Mapping[str, Any]) -> list[Row]:
    name = str(s["name"])
    result = s.get("result") or {}
    peak = _metric(s, "users").get("max")
    if isinstance(result.get("workload"), Mapping):
        workload = result["workload"]
        users = workload.get("users")
        if not isinstance(users, int):
            users = int(peak or 0)
        return [
            (
                name,
                users,
                int(peak) if peak is not None else None,
                result.get("processes"),
                str(workload.get("model", "")) or None,
                _json(dict(workload)),
            )
        ]
    if isinstance(result.get("strategies"), list):
        writers = [
            int(r.get("writers", 0)) for st in result["strategies"] for r in st.get("rounds", [])
        ]
        base = int(result.get("writers", 0))
        return [(name, base, max([base, *writers]), 1, "race", _json({"writers": base}))]
    contenders = [int(d["contenders"]) for _, d in walk(result) if "contenders" in d]
    if contenders:
        return [
            (name, contenders[0], max(contenders), 1, "race", _json({"contenders": contenders}))
        ]
    return []


def operation_rows(s: Mapping[str, Any]) -> list[Row]:
    name = str(s["name"])
    result = s.get("result") or {}
    rows: list[Row] = []
    if isinstance(result.get("workload"), Mapping):
        for metric, m in sorted(s.get("metrics", {}).items()):
            if m.get("type") == "counter":
                rows.append((name, metric, int(m["count"]), 0, m.get("per_second")))
            elif m.get("type") == "rate":
                passes, total = int(m["passes"]), int(m["total"])
                rows.append((name, metric, passes, total - passes, None))
        return rows
    for st in result.get("strategies", []) if isinstance(result, Mapping) else []:
        failed = sum(int(r.get("ops_failed", 0)) for r in st.get("rounds", []))
        rows.append(
            (name, f"debit:{st['strategy']}", int(st["ops_ok"]), failed, st.get("ops_per_s"))
        )
    for _, d in walk(result):
        if "acquired" in d and "writes_accepted" in d:
            mode = "fenced" if d.get("fencing") else "unfenced"
            rows.append((name, f"acquire:{mode}", int(d["acquired"]), 0, None))
            rows.append(
                (name, f"write:{mode}", int(d["writes_accepted"]), int(d["writes_rejected"]), None)
            )
    return rows


def _rate_of(m: Mapping[str, Any]) -> Any:
    """A rate metric's ``rate`` for a per-scenario column: None when nothing was checked
    (``total`` 0, or no ``total`` given), which is no sample rather than 0 %, also where the
    report holds 0 as an older report.json does (:func:`_metric_row` stores it NULL too)."""
    return m.get("rate") if m.get("total") else None


def coordination_rows(s: Mapping[str, Any]) -> list[Row]:
    connect = _metric(s, "ws_connect")
    sent = _metric(s, "messages_sent")
    if not connect and not sent:
        return []
    result = s.get("result") or {}
    connections = int(connect.get("count", 0))
    return [
        (
            str(s["name"]),
            connections,
            connect.get("p95") if connections else None,  # no samples: NULL, not an older 0
            sent.get("count"),
            _metric(s, "messages_received").get("count"),
            _rate_of(_metric(s, "delivery")),
            _rate_of(_metric(s, "success")),
            _json(result.get("errors", [])),
        )
    ]


def resource_rows(s: Mapping[str, Any]) -> list[Row]:
    name = str(s["name"])
    result = s.get("result") or {}
    rows: list[Row] = []
    for st in result.get("strategies", []) if isinstance(result, Mapping) else []:
        tally = st.get("tally", {})
        rounds = st.get("rounds", [])
        rows.append(
            (
                name,
                f"test_accounts row ({st['strategy']})",
                str(st["strategy"]),
                max([int(r.get("writers", 0)) for r in rounds] or [0]),
                int(st.get("ops_ok", 0)),
                int(tally.get("detected", 0)),
                sum(int(r.get("conflicts_detected", 0)) for r in rounds),
                int(st.get("retries", 0)),
                int(tally.get("violations", 0)),
                _json(
                    {
                        "lost_updates": st.get("lost_updates"),
                        "caught": st.get("caught"),
                        "valid": st.get("valid"),
                        "rounds": len(rounds),
                    }
                ),
            )
        )
    for _, d in walk(result):
        if "acquired" in d and "contended_acquires" in d:
            mode = "fenced" if d.get("fencing") else "unfenced"
            tally = d.get("tally", {})
            verdict = d.get("verdict", {})
            rows.append(
                (
                    name,
                    f"redis lock ({mode})",
                    mode,
                    d.get("contenders"),
                    int(d["acquired"]),
                    int(d["contended_acquires"]),
                    int(tally.get("detected", 0)),
                    0,
                    int(tally.get("violations", 0)),
                    _json(
                        {
                            "writes_accepted": d.get("writes_accepted"),
                            "writes_rejected": d.get("writes_rejected"),
                            "releases_lost": d.get("releases_lost"),
                            "ttl_ms": d.get("ttl_ms"),
                            "checker": verdict.get("counts", {}),
                        }
                    ),
                )
            )
    return rows


def sample_rows(s: Mapping[str, Any]) -> list[Row]:
    monitor = s.get("monitor") or {}
    rows: list[Row] = []
    for group, g in sorted((monitor.get("groups") or {}).items()):
        for p in g.get("series", []):
            rows.append(
                (
                    str(s["name"]),
                    group,
                    float(p["t"]),
                    float(p["rss_mb"]),
                    float(p["cpu_percent"]),
                    p.get("threads"),
                    p.get("open_files"),
                    p.get("sockets"),
                    p.get("processes"),
                )
            )
    return rows


#: What a NUL character is stored as: PostgreSQL text and JSONB cannot hold one.
NUL_STORED_AS = "\\x00"


def without_nul(value: Any) -> Any:
    """``value`` with every NUL in its strings (dictionary keys too) replaced by
    :data:`NUL_STORED_AS`: a message or error code a target sent may hold one, and a single
    NUL would otherwise keep the whole run out of the database."""
    if isinstance(value, str):
        return value.replace("\x00", NUL_STORED_AS)
    if isinstance(value, Mapping):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [without_nul(v) for v in value]
    return value


def run_record(report: Mapping[str, Any], provenance: Provenance) -> RunRecord:
    """Flatten ``report`` (a ``report.json`` dictionary) into rows for every table."""
    report = without_nul(report)
    session = session_values(report, provenance)
    tables = {
        "performance_metrics": Table("performance_metrics", METRIC_COLUMNS),
        "race_condition_events": Table("race_condition_events", RACE_COLUMNS),
        "concurrent_test_users": Table("concurrent_test_users", USER_COLUMNS),
        "concurrent_user_operations": Table("concurrent_user_operations", OPERATION_COLUMNS),
        "websocket_coordination": Table("websocket_coordination", COORDINATION_COLUMNS),
        "shared_resources": Table("shared_resources", RESOURCE_COLUMNS),
        "user_isolation_test_data": Table("user_isolation_test_data", ISOLATION_COLUMNS),
        "resource_samples": Table("resource_samples", SAMPLE_COLUMNS),
    }
    for s in report["scenarios"]:
        name = str(s["name"])
        result = s.get("result") or {}
        for metric, m in sorted(s.get("metrics", {}).items()):
            tables["performance_metrics"].rows.append(_metric_row(name, metric, m))
        tables["race_condition_events"].rows.extend(race_rows(name, result))
        tables["concurrent_test_users"].rows.extend(user_rows(s))
        tables["concurrent_user_operations"].rows.extend(operation_rows(s))
        tables["websocket_coordination"].rows.extend(coordination_rows(s))
        tables["shared_resources"].rows.extend(resource_rows(s))
        tables["user_isolation_test_data"].rows.extend(isolation_rows(name, result))
        tables["resource_samples"].rows.extend(sample_rows(s))
    return RunRecord(str(session["run_id"]), session, tuple(tables.values()))
