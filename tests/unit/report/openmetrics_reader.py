"""A strict reader of the OpenMetrics text format, for the metrics.txt tests.

It checks what an ingestor would refuse an exposition for (the OpenMetrics 1.0 text
format): one ``# EOF`` at the end; every family declared once (``# TYPE`` first, then
its ``# UNIT`` and ``# HELP``) before its samples and never resumed after another's;
sample names that are the family's name plus a suffix its type allows; no two samples
with the same name and labels; no family whose name or sample names clash with
another's (a gauge ``x_total`` beside a counter ``x``); a unit only on a name ending
with it; well-formed names, labels and numbers.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

SUFFIXES = {
    "counter": ("_total", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "gauge": ("",),
    "info": ("_info",),
    "stateset": ("",),
    "unknown": ("",),
}
_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
_SAMPLE = re.compile(rf"^({_NAME})(\{{(?:{_LABEL}(?:,{_LABEL})*)?\}})? (\S+)$")
_DESCRIPTOR = re.compile(rf"^# (TYPE|UNIT|HELP) ({_NAME})(?: (.*))?$")


@dataclass
class Family:
    name: str
    type: str
    unit: str = ""
    help: str = ""
    #: (sample name, labels as written, value)
    samples: list[tuple[str, str, float]] = field(default_factory=list)

    def claimed(self) -> set[str]:
        return {self.name, *(self.name + suffix for suffix in SUFFIXES[self.type])}


def read_openmetrics(text: str) -> dict[str, Family]:
    """The families of ``text`` by name; AssertionError naming the first fault."""
    assert text.endswith("\n# EOF\n") or text == "# EOF\n", "the exposition must end with # EOF"
    lines = text.splitlines()[:-1]
    assert "# EOF" not in lines, "# EOF before the end"
    families: dict[str, Family] = {}
    current: Family | None = None
    seen_samples: set[tuple[str, str]] = set()
    for number, line in enumerate(lines, start=1):
        where = f"line {number} {line!r}"
        descriptor = _DESCRIPTOR.match(line)
        if descriptor:
            kind, name, rest = descriptor.groups()
            if kind == "TYPE":
                assert name not in families, f"{where}: family {name} declared again"
                assert rest in SUFFIXES, f"{where}: unknown type"
                current = families[name] = Family(name, rest)
                continue
            assert current is not None, f"{where}: before any TYPE"
            assert current.name == name, f"{where}: not after its TYPE"
            assert not current.samples, f"{where}: metadata after the samples"
            if kind == "UNIT":
                assert rest, f"{where}: no unit"
                assert name.endswith(f"_{rest}"), f"{where}: name does not end in unit"
                current.unit = rest
            else:
                current.help = rest or ""
            continue
        assert not line.startswith("#"), f"{where}: not a descriptor"
        sample = _SAMPLE.match(line)
        assert sample, f"{where}: not a sample"
        name, labels, value = sample.group(1), sample.group(2) or "", sample.group(3)
        assert current is not None, f"{where}: a sample before any family"
        allowed = {current.name + suffix for suffix in SUFFIXES[current.type]}
        assert name in allowed, f"{where}: not a sample of {current.type} {current.name}"
        assert (name, labels) not in seen_samples, f"{where}: the same sample again"
        seen_samples.add((name, labels))
        number_value = float(value)
        assert not math.isnan(number_value) or value == "NaN", f"{where}: bad number"
        current.samples.append((name, labels, number_value))
    owners: dict[str, str] = {}
    for family in families.values():
        for claimed in family.claimed():
            other = owners.setdefault(claimed, family.name)
            assert other == family.name, f"families {other} and {family.name} clash on {claimed}"
    return families
