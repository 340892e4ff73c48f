"""``junit.xml``: one test case per scenario and per threshold, for CI systems (pure).

Mapping: a ``<testsuite>`` per scenario; a test case named ``scenario`` that
fails when the scenario failed (its message lists the failed thresholds and the errors
with their samples, its ``system-out`` the notes), errs when the scenario raised, and is
skipped when the suite left the scenario out (``ran`` false, the reason in its notes);
then a test case per threshold, named ``<metric>: <expression>``, failed with the
threshold's diagnostic, or skipped when it is not applicable (the scenario does not record
that metric, or recorded it with no samples).

An interrupted run (Ctrl-C or SIGTERM, ``"interrupted": true``) does not read as passed: the
scenario it cut short (its load stopped by the signal: its results are partial) errs with
``interrupted``, and each scenario of the run's selection (``config.scenarios``; none named:
every scenario) that did not finish gets a ``<testsuite>`` whose ``scenario`` case errs
with ``interrupted``: it was never judged.

Control characters (in an error message a target sent, say) are written as their escapes:
XML 1.0 cannot hold them, and one would make the whole file unreadable to a CI system. Names
(``name``, ``classname``) show tabs and newlines as escapes too, so each stays on one line.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from squall.metrics.result import error_summaries_of
from squall.report.printable import one_line, printable
from squall.report.run_state import cut_short

#: The attributes a CI shows as a test's name: kept on one line.
_NAMES = frozenset({"name", "classname"})


def _case(suite: ET.Element, scenario: str, name: str, seconds: float = 0.0) -> ET.Element:
    return ET.SubElement(
        suite,
        "testcase",
        {"classname": f"squall.{scenario}", "name": name, "time": f"{seconds:.3f}"},
    )


def _unfinished(report: Mapping[str, Any]) -> list[str]:
    """The scenarios of an interrupted run's selection that are not in its report: the
    one running when it stopped (unless it kept its partial results) and those after it.
    None named in ``config.scenarios`` means every scenario; a report without the key (a
    pytest session's) names no selection."""
    if not report.get("interrupted"):
        return []
    config = report.get("config")
    selection = config.get("scenarios") if isinstance(config, Mapping) else None
    if not isinstance(selection, list):
        return []
    if not selection:
        from squall.suite import SCENARIOS  # squall.suite imports squall.report

        selection = list(SCENARIOS)
    reported = {str(s["name"]) for s in report["scenarios"]}
    return [name for name in dict.fromkeys(map(str, selection)) if name not in reported]


def _errors(s: Mapping[str, Any]) -> list[str]:
    """The scenario's timeouts, and its errors by kind with their samples, as lines for a
    failure's text (as the terminal summary says them)."""
    lines = []
    timeouts = (s.get("metrics") or {}).get("timeouts")
    count = timeouts.get("count") if isinstance(timeouts, Mapping) else None
    if isinstance(count, int) and count:
        lines.append(f"timeouts: {count} (no answer within the timeout)")
    for entry in error_summaries_of(s.get("result")):
        lines.append(f"errors.{entry.kind}: {entry.count}")
        lines += [f"  {sample}" for sample in entry.samples]
    return lines


def junit_xml(report: Mapping[str, Any]) -> str:
    """The JUnit XML document for ``report`` (a report.json dictionary)."""
    root = ET.Element("testsuites", {"name": f"squall run {report['run_id']}"})
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for s in report["scenarios"]:
        name = str(s["name"])
        thresholds = list(s.get("thresholds", []))
        failed = [t for t in thresholds if t.get("status") == "failed"]
        skipped = [t for t in thresholds if t.get("status") == "not_applicable"]
        not_run = s.get("ran") is False
        crashed = s.get("error")
        stopped = cut_short(s) if report.get("interrupted") else None
        erred = bool(crashed or stopped)
        counts = {
            "tests": 1 + len(thresholds),
            "failures": len(failed) + (1 if s.get("verdict") == "failed" and not erred else 0),
            "errors": 1 if erred else 0,
            "skipped": len(skipped) + (1 if not_run else 0),
        }
        suite = ET.SubElement(
            root,
            "testsuite",
            {
                "name": name,
                "tests": str(counts["tests"]),
                "failures": str(counts["failures"]),
                "errors": str(counts["errors"]),
                "skipped": str(counts["skipped"]),
                "time": f"{float(s.get('duration_s', 0.0)):.3f}",
            },
        )
        for key in totals:
            totals[key] += counts[key]
        case = _case(suite, name, "scenario", float(s.get("duration_s", 0.0)))
        if crashed:
            error = ET.SubElement(
                case, "error", {"message": f"{name} raised {crashed}", "type": "scenario"}
            )
            error.text = f"{crashed}; its measurements are lost"
        elif stopped:
            error = ET.SubElement(
                case,
                "error",
                {
                    "message": f"interrupted ({stopped}): {name} was cut short, "
                    "its results are partial",
                    "type": "interrupted",
                },
            )
            error.text = "\n".join(
                [
                    f"the run was interrupted ({stopped}) before {name} finished",
                    *(str(t["diagnostic"]) for t in failed),
                    *_errors(s),
                ]
            )
        elif s.get("verdict") == "failed":
            failure = ET.SubElement(
                case,
                "failure",
                {"message": f"{name}: {len(failed)} threshold(s) failed", "type": "threshold"},
            )
            failure.text = "\n".join([*(str(t["diagnostic"]) for t in failed), *_errors(s)])
        elif not_run:
            reason = "; ".join(map(str, s.get("notes", []))) or "not run"
            ET.SubElement(case, "skipped", {"message": reason})
        if s.get("notes"):
            ET.SubElement(case, "system-out").text = "\n".join(map(str, s["notes"]))
        for t in thresholds:
            case = _case(suite, name, f"{t['metric']}: {t['expression']}")
            if t.get("status") == "failed":
                failure = ET.SubElement(
                    case, "failure", {"message": str(t["diagnostic"]), "type": "threshold"}
                )
                failure.text = str(t["diagnostic"])
            elif t.get("status") == "not_applicable":
                ET.SubElement(case, "skipped", {"message": str(t["diagnostic"])})
    for name in _unfinished(report):
        one_error = {"tests": "1", "failures": "0", "errors": "1", "skipped": "0"}
        suite = ET.SubElement(root, "testsuite", {"name": name, **one_error, "time": "0.000"})
        case = _case(suite, name, "scenario")
        ET.SubElement(
            case,
            "error",
            {
                "message": f"interrupted before {name} finished: it was not judged",
                "type": "interrupted",
            },
        )
        totals["tests"] += 1
        totals["errors"] += 1
    baseline = report.get("baseline")
    if isinstance(baseline, Mapping):
        regressions = [str(r) for r in baseline.get("regressions") or []]
        one_case = {"tests": "1", "failures": str(int(bool(regressions))), "errors": "0"}
        suite = ET.SubElement(
            root, "testsuite", {"name": "baseline", **one_case, "skipped": "0", "time": "0.000"}
        )
        case = _case(suite, "baseline", f"against {baseline.get('run_id')}")
        if regressions:
            failure = ET.SubElement(
                case,
                "failure",
                {
                    "message": f"{len(regressions)} regression(s) against "
                    f"{baseline.get('run_id')} (tolerance {float(baseline['tolerance']):.0%})",
                    "type": "regression",
                },
            )
            failure.text = "\n".join(regressions)
        totals["tests"] += 1
        totals["failures"] += 1 if regressions else 0
    for key, value in totals.items():
        root.set(key, str(value))
    for element in root.iter():
        element.text = None if element.text is None else printable(element.text)
        for name, text in element.attrib.items():
            element.set(name, one_line(text) if name in _NAMES else printable(text))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
