"""``metrics.txt``: a run's final figures in the OpenMetrics text format (pure).

Names (every family carries a ``scenario`` label):

- trend ``X`` → summary ``squall_X_seconds`` (quantiles 0.5, 0.9, 0.95, 0.99,
  0.999, plus ``_count`` and ``_sum``; only ``_count`` and ``_sum``, both 0, for a
  scenario where the trend has no samples);
- counter ``X`` → counter ``squall_X`` (sample ``squall_X_total``);
- rate ``X`` → gauge ``squall_X_ratio``, no sample for a scenario where it has none
  (``total`` 0: the family is left out when no scenario has one);
- gauge ``X`` → gauge ``squall_X``;
- each judged threshold → ``squall_threshold_passed{scenario,metric,expression}`` 1 or 0;
- the run → ``squall_run_passed`` 1 or 0 (0 for an interrupted run, or one in which no
  scenario ran: what did not run was not judged), ``squall_run_interrupted`` 1 or 0, and
  ``squall_run_info{run_id,schema}`` 1.

A value that is null or not finite (NaN, ±inf: a hand-built report, say) has no sample,
nor has a negative count, sum or quantile, which the format refuses. Text from outside
(label values, the metric names in ``# HELP``) shows control characters and lone
surrogates as their escapes (:func:`~squall.report.printable.printable`): ``cat
metrics.txt`` in a CI log does not run a terminal sequence a target put in an error code.

Characters outside ``[a-zA-Z0-9_]`` in metric names become ``_``. Families that would
then clash (``a.b`` and ``a_b``; a gauge ``X_total`` beside a counter ``X``, whose sample is
``squall_X_total``; a counter and a gauge both called ``X``; a metric named like the run's
own families) are kept apart, as the format requires: of the metric names that want one
family name, the one with the fewest characters replaced keeps it (on a tie, the first in
code-point order); each other one gets ``_`` and the first 8 hex digits of the SHA-256 of
its metric name before the unit suffix (``squall_a_b_2e7336dc_seconds`` for a trend
``a.b``), and its ``# HELP`` names the metric. A sample repeated with the same labels (the
same threshold listed twice) is written once. The text ends with ``# EOF`` as the format
requires.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from squall.report.printable import printable
from squall.report.run_state import nothing_ran

_QUANTILES = (("0.5", "p50"), ("0.9", "p90"), ("0.95", "p95"), ("0.99", "p99"), ("0.999", "p999"))

#: The sample names a family of each type may write, as suffixes of its name: no two
#: families of an exposition may share one (nor a name).
_SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "gauge": ("",),
    "info": ("_info",),
}

#: How many names a family is offered before giving up (two would do but for metric names
#: chosen to end like another's suffixed name).
_MAX_TRIES = 1000

#: squall's own families: their names are never given to a metric's.
_OWN_FAMILIES = {
    "squall_threshold_passed": "gauge",
    "squall_run_passed": "gauge",
    "squall_run_interrupted": "gauge",
    "squall_run": "info",
}


_NOT_IN_A_NAME = re.compile(r"[^a-zA-Z0-9_]")


def metric_name(name: str) -> str:
    """``errors.timeout`` → ``squall_errors_timeout``."""
    return f"squall_{_NOT_IN_A_NAME.sub('_', name)}"


def _label_value(value: str) -> str:
    text = printable(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: Mapping[str, str]) -> str:
    inner = ",".join(f'{k}="{_label_value(v)}"' for k, v in labels.items())
    return "{" + inner + "}" if inner else ""


def _finite(value: Any, *, negative: bool = True) -> float | None:
    """``value`` as a number for a sample; None when it has none: null, not a number, NaN or
    ±inf (and below 0 unless ``negative``: a count, sum or quantile cannot be)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    if not math.isfinite(number) or (number < 0 and not negative):
        return None
    return number


def _number(number: float) -> str:
    return repr(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)


def _claimed(name: str, kind: str) -> set[str]:
    """The family name and every sample name a family of ``kind`` called ``name`` may write."""
    return {name, *(name + suffix for suffix in _SAMPLE_SUFFIXES[kind])}


@dataclass
class _Family:
    kind: str
    help: str
    #: The name it wants (``squall_X``), without the unit suffix.
    stem: str
    unit: str = ""
    #: The squall metric it exposes; None for squall's own families.
    metric: str | None = None
    #: (sample name suffix, labels, value); the name is decided once every family is known.
    samples: list[tuple[str, str, str]] = field(default_factory=list)
    written: set[tuple[str, str]] = field(default_factory=set)
    name: str = ""

    def add(self, suffix: str, labels: str, value: str) -> None:
        """A sample, unless one of the same name and labels is already there."""
        if (suffix, labels) not in self.written:
            self.written.add((suffix, labels))
            self.samples.append((suffix, labels, value))

    def names(self) -> Iterator[str]:
        """Its plain name, then ones kept apart by a suffix derived from its metric's name
        (finitely many: :func:`_name_families` takes the first that is free)."""
        unit = f"_{self.unit}" if self.unit else ""
        yield f"{self.stem}{unit}"
        digest = hashlib.sha256(str(self.metric).encode()).hexdigest()[:8]
        yield f"{self.stem}_{digest}{unit}"
        for number in range(2, _MAX_TRIES):  # only a name that is itself such a suffix
            yield f"{self.stem}_{digest}_{number}{unit}"


class _Families:
    def __init__(self) -> None:
        self.families: dict[tuple[str, str | None, str], _Family] = {}

    def get(
        self, stem: str, kind: str, help_text: str, unit: str = "", *, metric: str | None = None
    ) -> _Family:
        """The family of ``metric`` (None: one of squall's own, ``stem`` its name)."""
        key = (kind, metric, stem)
        found = self.families.get(key)
        if found is None:
            found = self.families[key] = _Family(kind, help_text, stem, unit, metric)
        return found


def _name_families(families: list[_Family]) -> None:
    """Give every family a name no other family's names clash with: squall's own first,
    then the metrics', those with fewer characters replaced in their name first, then by
    metric name."""
    taken: set[str] = set()
    for own, kind in _OWN_FAMILIES.items():
        taken |= _claimed(own, kind)

    def rank(family: _Family) -> tuple[bool, int, str, str]:
        metric = family.metric
        if metric is None:
            return (False, 0, family.stem, family.kind)
        return (True, len(_NOT_IN_A_NAME.findall(metric)), metric, family.kind)

    for family in sorted(families, key=rank):
        if family.metric is None:
            family.name = family.stem
            continue
        for name in family.names():
            if not _claimed(name, family.kind) & taken:
                family.name = name
                break
        else:  # pragma: no cover - needs a thousand metrics named to clash with this one
            raise ValueError(f"no free OpenMetrics name for metric {family.metric!r}")
        taken |= _claimed(family.name, family.kind)


#: A sample of a metric: family stem, type, what the metric is (for ``# HELP``), unit,
#: sample name suffix, labels, value.
_Sample = tuple[str, str, str, str, str, dict[str, str], float]


def _samples(name: str, m: Mapping[str, Any], scenario: dict[str, str]) -> Iterator[_Sample]:
    """The samples of metric ``name`` (``m``, its report.json dictionary) in a scenario;
    none for a value that is null or not finite (or a negative count, sum or quantile)."""
    kind = m.get("type")
    base = metric_name(name)
    if kind == "trend":
        count = _finite(m.get("count"), negative=False)
        if count is None:
            return
        trend = (base, "summary", "trend", "seconds")
        # No samples: no quantiles (their statistics are null; older reports wrote 0), only
        # the count and sum, both 0.
        for q, key in _QUANTILES if count else ():
            value = _finite(m.get(key), negative=False)
            if value is not None:
                yield (*trend, "", {**scenario, "quantile": q}, value)
        yield (*trend, "_count", scenario, float(int(count)))
        mean = _finite(m.get("mean"), negative=False) if count else 0.0
        total = None if mean is None else _finite(mean * int(count), negative=False)
        if total is not None:
            yield (*trend, "_sum", scenario, total)
    elif kind == "counter":
        count = _finite(m.get("count"), negative=False)
        if count is not None:
            yield (base, "counter", "counter", "", "_total", scenario, float(int(count)))
    elif kind == "rate":
        # No samples (total 0): a ratio of nothing (older reports wrote 0).
        rate = _finite(m.get("rate")) if _finite(m.get("total"), negative=False) else None
        if rate is not None:
            yield (base, "gauge", "rate of passes", "ratio", "", scenario, rate)
    elif kind == "gauge":
        value = _finite(m.get("value"))
        if value is not None:
            yield (base, "gauge", "gauge", "", "", scenario, value)


def openmetrics_text(report: Mapping[str, Any]) -> str:
    """The exposition of ``report`` (a report.json dictionary), ``# EOF`` terminated."""
    fams = _Families()
    for s in report["scenarios"]:
        scenario = {"scenario": str(s["name"])}
        for name, m in sorted(s.get("metrics", {}).items()):
            for stem, kind, what, unit, suffix, label_set, number in _samples(name, m, scenario):
                fam = fams.get(stem, kind, f"{name} ({what})", unit, metric=name)
                fam.add(suffix, _labels(label_set), _number(number))
        for t in s.get("thresholds", []):
            if t.get("status") == "not_applicable":
                continue
            fam = fams.get("squall_threshold_passed", "gauge", "1 if the threshold held")
            labels = _labels(
                {**scenario, "metric": str(t["metric"]), "expression": str(t["expression"])}
            )
            fam.add("", labels, "1" if t.get("status") == "passed" else "0")
    interrupted = bool(report.get("interrupted"))
    judged = not interrupted and not nothing_ran(report)
    run = fams.get(
        "squall_run_passed",
        "gauge",
        "1 if every threshold of the run held and it ran to its end (0 when interrupted, "
        "when none of its scenarios ran, or when it regressed against --baseline)",
    )
    run.add("", "", "1" if report["verdict"].get("ok") and judged else "0")
    stop = fams.get(
        "squall_run_interrupted",
        "gauge",
        "1 if the run was stopped (Ctrl-C, SIGTERM) before its end",
    )
    stop.add("", "", "1" if interrupted else "0")
    info = fams.get("squall_run", "info", "the run this exposition describes")
    run_labels = {"run_id": str(report["run_id"]), "schema": str(report.get("schema", ""))}
    info.add("_info", _labels(run_labels), "1")
    _name_families(list(fams.families.values()))
    lines: list[str] = []
    for fam in fams.families.values():
        lines.append(f"# TYPE {fam.name} {fam.kind}")
        if fam.unit and fam.name.endswith("_" + fam.unit):
            lines.append(f"# UNIT {fam.name} {fam.unit}")
        lines.append(f"# HELP {fam.name} {_label_value(fam.help)}")
        lines.extend(f"{fam.name}{suffix}{labels} {value}" for suffix, labels, value in fam.samples)
    lines.append("# EOF")
    return "\n".join(lines) + "\n"
