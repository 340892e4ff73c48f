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

Characters outside ``[a-zA-Z0-9_]`` in metric names become ``_``. The text
ends with ``# EOF`` as the format requires.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_QUANTILES = (("0.5", "p50"), ("0.9", "p90"), ("0.95", "p95"), ("0.99", "p99"), ("0.999", "p999"))


def metric_name(name: str) -> str:
    """``errors.timeout`` → ``squall_errors_timeout``."""
    clean = re.sub(r"[^a-zA-Z0-9_]", "_", name)
    return f"squall_{clean}"


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


@dataclass
class _Family:
    name: str
    kind: str
    help: str
    unit: str = ""
    samples: list[str] = field(default_factory=list)


class _Families:
    def __init__(self) -> None:
        self.families: dict[str, _Family] = {}

    def get(self, name: str, kind: str, help_text: str, unit: str = "") -> _Family:
        found = self.families.get(name)
        if found is not None and found.kind != kind:
            name = f"{name}_{kind}"
            found = self.families.get(name)
        if found is None:
            found = self.families[name] = _Family(name, kind, help_text, unit)
        return found


def openmetrics_text(report: Mapping[str, Any]) -> str:
    """The exposition of ``report`` (a report.json dictionary), ``# EOF`` terminated."""
    fams = _Families()
    for s in report["scenarios"]:
        scenario = {"scenario": str(s["name"])}
        for name, m in sorted(s.get("metrics", {}).items()):
            kind = m.get("type")
            base = metric_name(name)
            if kind == "trend":
                fam = fams.get(f"{base}_seconds", "summary", f"{name} (trend)", "seconds")
                count = int(m["count"])
                # No samples: no quantiles (their statistics are null; older reports wrote
                # 0), only the count and sum, both 0.
                for q, key in _QUANTILES if count else ():
                    labels = _labels({**scenario, "quantile": q})
                    fam.samples.append(f"{fam.name}{labels} {_number(m[key])}")
                fam.samples.append(f"{fam.name}_count{_labels(scenario)} {count}")
                total = float(m["mean"]) * count if count else 0.0
                fam.samples.append(f"{fam.name}_sum{_labels(scenario)} {_number(total)}")
            elif kind == "counter":
                fam = fams.get(base, "counter", f"{name} (counter)")
                fam.samples.append(f"{fam.name}_total{_labels(scenario)} {int(m['count'])}")
            elif kind == "rate":
                if int(m["total"]) == 0:
                    continue  # no samples: a ratio of nothing (older reports wrote 0)
                fam = fams.get(f"{base}_ratio", "gauge", f"{name} (rate of passes)", "ratio")
                fam.samples.append(f"{fam.name}{_labels(scenario)} {_number(m['rate'])}")
            elif kind == "gauge":
                fam = fams.get(base, "gauge", f"{name} (gauge)")
                fam.samples.append(f"{fam.name}{_labels(scenario)} {_number(m['value'])}")
        for t in s.get("thresholds", []):
            if t.get("status") == "not_applicable":
                continue
            fam = fams.get("squall_threshold_passed", "gauge", "1 if the threshold held")
            labels = _labels(
                {**scenario, "metric": str(t["metric"]), "expression": str(t["expression"])}
            )
            fam.samples.append(f"{fam.name}{labels} {1 if t.get('status') == 'passed' else 0}")
    run = fams.get("squall_run_passed", "gauge", "1 if every threshold of the run held")
    run.samples.append(f"squall_run_passed {1 if report['verdict'].get('ok') else 0}")
    info = fams.get("squall_run", "info", "the run this exposition describes")
    run_labels = {"run_id": str(report["run_id"]), "schema": str(report.get("schema", ""))}
    info.samples.append(f"squall_run_info{_labels(run_labels)} 1")
    lines: list[str] = []
    for fam in fams.families.values():
        lines.append(f"# TYPE {fam.name} {fam.kind}")
        if fam.unit and fam.name.endswith("_" + fam.unit):
            lines.append(f"# UNIT {fam.name} {fam.unit}")
        lines.append(f"# HELP {fam.name} {_label_value(fam.help)}")
        lines.extend(fam.samples)
    lines.append("# EOF")
    return "\n".join(lines) + "\n"
