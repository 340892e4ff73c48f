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
- the run → ``squall_run_passed`` 1 or 0, and ``squall_run_info{run_id,schema}`` 1.

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
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

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
    "squall_run": "info",
}


_NOT_IN_A_NAME = re.compile(r"[^a-zA-Z0-9_]")


def metric_name(name: str) -> str:
    """``errors.timeout`` → ``squall_errors_timeout``."""
    return f"squall_{_NOT_IN_A_NAME.sub('_', name)}"


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: Mapping[str, str]) -> str:
    inner = ",".join(f'{k}="{_label_value(v)}"' for k, v in labels.items())
    return "{" + inner + "}" if inner else ""


def _number(value: Any) -> str:
    number = float(value)
    if number != number:
        return "NaN"
    if number in (float("inf"), float("-inf")):
        return "+Inf" if number > 0 else "-Inf"
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


def openmetrics_text(report: Mapping[str, Any]) -> str:
    """The exposition of ``report`` (a report.json dictionary), ``# EOF`` terminated."""
    fams = _Families()
    for s in report["scenarios"]:
        scenario = {"scenario": str(s["name"])}
        for name, m in sorted(s.get("metrics", {}).items()):
            kind = m.get("type")
            base = metric_name(name)
            if kind == "trend":
                fam = fams.get(base, "summary", f"{name} (trend)", "seconds", metric=name)
                count = int(m["count"])
                # No samples: no quantiles (their statistics are null; older reports wrote
                # 0), only the count and sum, both 0.
                for q, key in _QUANTILES if count else ():
                    fam.add("", _labels({**scenario, "quantile": q}), _number(m[key]))
                fam.add("_count", _labels(scenario), str(count))
                total = float(m["mean"]) * count if count else 0.0
                fam.add("_sum", _labels(scenario), _number(total))
            elif kind == "counter":
                fam = fams.get(base, "counter", f"{name} (counter)", metric=name)
                fam.add("_total", _labels(scenario), str(int(m["count"])))
            elif kind == "rate":
                if int(m["total"]) == 0:
                    continue  # no samples: a ratio of nothing (older reports wrote 0)
                fam = fams.get(base, "gauge", f"{name} (rate of passes)", "ratio", metric=name)
                fam.add("", _labels(scenario), _number(m["rate"]))
            elif kind == "gauge":
                fam = fams.get(base, "gauge", f"{name} (gauge)", metric=name)
                fam.add("", _labels(scenario), _number(m["value"]))
        for t in s.get("thresholds", []):
            if t.get("status") == "not_applicable":
                continue
            fam = fams.get("squall_threshold_passed", "gauge", "1 if the threshold held")
            labels = _labels(
                {**scenario, "metric": str(t["metric"]), "expression": str(t["expression"])}
            )
            fam.add("", labels, "1" if t.get("status") == "passed" else "0")
    run = fams.get("squall_run_passed", "gauge", "1 if every threshold of the run held")
    run.add("", "", "1" if report["verdict"].get("ok") else "0")
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
