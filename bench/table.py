"""Pure arithmetic and formatting for benchmark results: windows, ratios, goals, markdown.

Absolute numbers on a shared 2-core machine move with whatever else runs; the
ratios between measurements taken in the same run move much less. Everything
here takes plain data (numbers, lists, the JSON dicts the benchmarks write) and
returns plain data, so it is tested with hand-written inputs.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: One sample of a client's progress: (seconds since its start, cumulative round trips,
#: cumulative CPU seconds of the client process[, cumulative user CPU seconds of it]).
Sample = tuple[float, ...]


class WindowError(ValueError):
    """A measurement window does not fit the samples; the message says which and why."""


@dataclass(frozen=True)
class Window:
    """Round trips and CPU time between two samples of one timeline."""

    start_s: float
    end_s: float
    round_trips: float
    cpu_s: float
    #: The user part of ``cpu_s`` (the rest is the kernel's), when the samples carry it.
    user_s: float | None = None

    @property
    def seconds(self) -> float:
        return self.end_s - self.start_s

    @property
    def rate(self) -> float:
        """Round trips per wall-clock second in the window."""
        return self.round_trips / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_fraction(self) -> float:
        """Share of one core the client used in the window (1.0 = a full core)."""
        return self.cpu_s / self.seconds if self.seconds > 0 else 0.0

    @property
    def per_core(self) -> float:
        """Round trips per CPU-second of the client: what one fully used core would do."""
        return self.round_trips / self.cpu_s if self.cpu_s > 0 else 0.0

    @property
    def user_us(self) -> float | None:
        """User CPU microseconds per round trip (None without the split)."""
        if self.user_s is None or self.round_trips <= 0:
            return None
        return self.user_s / self.round_trips * 1e6

    @property
    def system_us(self) -> float | None:
        """System (kernel) CPU microseconds per round trip (None without the split)."""
        if self.user_s is None or self.round_trips <= 0:
            return None
        return max(0.0, self.cpu_s - self.user_s) / self.round_trips * 1e6

    def to_dict(self) -> dict[str, float | None]:
        return {
            "start_s": self.start_s,
            "end_s": self.end_s,
            "seconds": self.seconds,
            "round_trips": self.round_trips,
            "cpu_s": self.cpu_s,
            "user_s": self.user_s,
            "rate_per_s": self.rate,
            "cpu_fraction": self.cpu_fraction,
            "per_core_per_s": self.per_core,
            "user_us_per_round_trip": self.user_us,
            "system_us_per_round_trip": self.system_us,
        }


def window(samples: Sequence[Sample], warmup_s: float) -> Window:
    """The steady-state window: from the first sample at or after ``warmup_s`` to the last.

    Samples must be in time order with non-decreasing counts. Raises
    :class:`WindowError` when fewer than two samples lie in the window (the run
    was shorter than its warm-up, or the client reported too rarely).
    """
    inside = [s for s in samples if s[0] >= warmup_s]
    if len(inside) < 2:
        last = samples[-1][0] if samples else None
        raise WindowError(
            f"need two samples at or after the {warmup_s:g} s warm-up, got {len(inside)} "
            f"(last sample at {last!r} s); lengthen the run or shorten the warm-up"
        )
    first, final = inside[0], inside[-1]
    for earlier, later in itertools.pairwise(inside):
        if later[0] < earlier[0] or later[1] < earlier[1]:
            raise WindowError(
                f"samples out of order: {earlier!r} then {later!r}; "
                "give cumulative counts in time order"
            )
    user = final[3] - first[3] if len(first) > 3 and len(final) > 3 else None
    return Window(first[0], final[0], final[1] - first[1], final[2] - first[2], user)


def cumulative(per_second: Sequence[tuple[float, ...]]) -> list[Sample]:
    """Turn (end of second, count in that second, CPU seconds so far[, user CPU seconds so
    far]) into cumulative samples.

    A sample at t = 0 with nothing done is prepended so that the first second counts.
    """
    samples: list[Sample] = (
        [(0.0, 0.0, 0.0, 0.0)] if per_second and len(per_second[0]) > 3 else [(0.0, 0.0, 0.0)]
    )
    total = 0.0
    for t, count, *cpu in per_second:
        total += count
        samples.append((t, total, *cpu))
    return samples


def median(values: Sequence[float | None]) -> float | None:
    """The median of the values present (None ones left out), or None when there are none."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    if math.isnan(numerator) or math.isnan(denominator):
        return None
    return numerator / denominator


def round_ratios(
    ours: Sequence[float | None], theirs: Sequence[float | None]
) -> tuple[float | None, ...]:
    """``ours[i] / theirs[i]`` round by round (None where either is missing), for figures
    measured in alternating rounds: the median of these is the ratio to report."""
    return tuple(ratio(a, b) for a, b in zip(ours, theirs, strict=False))


def fmt_ratio(value: float | None) -> str:
    """``3.42×``, or an em dash when there is no ratio."""
    return "—" if value is None else f"{value:.2f}×"


def fmt_percent(value: float | None) -> str:
    """A fraction as ``71 %``, or an em dash."""
    return "—" if value is None else f"{value * 100:.0f} %"


def fmt_count(value: float | None) -> str:
    """A rate or count with thousands separators (``12,345``), or an em dash."""
    return "—" if value is None else f"{value:,.0f}"


def fmt_ms(seconds: float | None) -> str:
    """Seconds as milliseconds (``12.3 ms``), or an em dash."""
    return "—" if seconds is None else f"{seconds * 1000:.1f} ms"


def fmt_kb(value_bytes: float | None) -> str:
    """Bytes as KB (``17.2 KB``, 1 KB = 1024 bytes), or an em dash."""
    return "—" if value_bytes is None else f"{value_bytes / 1024:.1f} KB"


@dataclass(frozen=True)
class Goal:
    """A target line of the table: ``actual`` compared with ``target`` (at least / at most).

    ``rounds``: when ``actual`` is the median of per-round figures, those figures, so the
    table shows how far the rounds spread around the target (a miss by less than the
    spread says more about the machine than about the code).
    """

    name: str
    actual: float | None
    target: float
    at_least: bool = True
    unit: str = "×"
    rounds: tuple[float | None, ...] = ()

    @property
    def met(self) -> bool | None:
        """True / False, or None when nothing was measured."""
        return None if self.actual is None else self._reaches(self.actual)

    def _reaches(self, value: float) -> bool:
        return value >= self.target if self.at_least else value <= self.target

    def _show(self, value: float, *, measured: bool = True) -> str:
        """``value`` in the goal's unit. A measured figure is rounded towards missing the
        target (down for "at least", up for "at most"), so one just short of it never
        reads as the target itself (69.9 %, not 70 %); percentages keep a decimal."""
        if self.unit == "%":
            if not measured:
                return fmt_percent(value)
            return f"{self._towards_miss(value * 100, 1):.1f} %"
        decimals = 2 if self.unit == "×" else 1 if self.unit else 0
        shown = self._towards_miss(value, decimals) if measured else value
        if self.unit == "×":
            return fmt_ratio(shown)
        if not self.unit:
            return fmt_count(shown)
        return f"{shown:,.1f} {self.unit}"

    def _towards_miss(self, value: float, decimals: int) -> float:
        scale = float(10**decimals)
        # The small slack keeps a figure that is exactly on a step (0.29 * 100) on it.
        if self.at_least:
            return math.floor(value * scale + 1e-6) / scale
        return math.ceil(value * scale - 1e-6) / scale

    def rounds_met(self) -> int:
        """How many of ``rounds`` reach the target on their own."""
        return sum(1 for value in self.rounds if value is not None and self._reaches(value))

    def to_dict(self) -> dict[str, Any]:
        sign = "≥" if self.at_least else "≤"
        shown: dict[str, Any] = {
            "goal": f"{self.name} {sign} {self._show(self.target, measured=False)}",
            "actual": self.actual,
            "shown": "—" if self.actual is None else self._show(self.actual),
            "target": self.target,
            "at_least": self.at_least,
            "met": self.met,
        }
        if self.rounds:
            measured = [value for value in self.rounds if value is not None]
            shown["rounds"] = list(self.rounds)
            shown["rounds_shown"] = (
                f"{', '.join(self._show(v) for v in measured)} "
                f"({self.rounds_met()} of {len(measured)} met)"
                if measured
                else "—"
            )
        return shown


def goal_mark(met: bool | None) -> str:
    return {True: "met", False: "**not met**", None: "not measured"}[met]


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub markdown table; cells are escaped for ``|``; short rows are padded."""
    if not columns:
        raise ValueError("a table needs at least one column; give its headings")

    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    width = len(columns)
    lines = [
        "| " + " | ".join(cell(c) for c in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for row in rows:
        if len(row) > width:
            raise ValueError(f"row {list(row)!r} has {len(row)} cells; the table has {width}")
        padded = [*row, *([""] * (width - len(row)))]
        lines.append("| " + " | ".join(cell(c) for c in padded) + " |")
    return "\n".join(lines)


#: The mark of a table row whose measurements the load generator itself limited.
SATURATED = "generator saturated"


def _row_label(measurement: Mapping[str, Any]) -> str | None:
    """The first cell of the table row ``measurement`` is part of: its ``path`` (the
    platform benchmark), or its ``scale`` as ``4×`` (growth); None when it has neither."""
    path = measurement.get("path")
    if isinstance(path, str):
        return path
    scale = measurement.get("scale")
    if isinstance(scale, int | float) and not isinstance(scale, bool):
        return f"{scale:g}×"
    return None


@dataclass(frozen=True)
class Saturation:
    """How many of a row's measurements ran with a saturated load generator, and why."""

    saturated: int
    measured: int
    reasons: tuple[str, ...]

    def mark(self) -> str:
        if self.saturated == self.measured:
            return SATURATED
        return f"{SATURATED} in {self.saturated} of {self.measured} measurements"


def saturation(result: Mapping[str, Any]) -> dict[str, Saturation]:
    """Row label → :class:`Saturation`, for the rows with at least one measurement whose
    recorded ``generator.saturated`` is true (the squall engine's own verdict)."""
    rows: dict[str, list[Mapping[str, Any]]] = {}
    for measurement in result.get("measurements") or []:
        generator = measurement.get("generator") if isinstance(measurement, Mapping) else None
        label = _row_label(measurement) if isinstance(generator, Mapping) else None
        if label is not None and isinstance(generator, Mapping):
            rows.setdefault(label, []).append(generator)
    found: dict[str, Saturation] = {}
    for label, generators in rows.items():
        saturated = [g for g in generators if g.get("saturated") is True]
        if saturated:
            reasons = dict.fromkeys(str(r) for g in saturated for r in g.get("reasons") or [])
            found[label] = Saturation(len(saturated), len(generators), tuple(reasons))
    return found


def _marked_rows(
    rows: Sequence[Sequence[str]], saturated: Mapping[str, Saturation]
) -> list[list[str]]:
    """``rows`` with each saturated row's first cell followed by its mark."""
    marked = []
    for row in rows:
        cells = list(row)
        if cells and cells[0] in saturated:
            cells[0] = f"{cells[0]} ({saturated[cells[0]].mark()})"
        marked.append(cells)
    return marked


def _saturation_note(label: str, found: Saturation) -> str:
    """The note under the table for the row ``label``: how often and why (each recorded
    reason without its advice, "; add processes …")."""
    reasons = list(dict.fromkeys(reason.split("; ")[0] for reason in found.reasons))
    return (
        f"{SATURATED} ({label}): in {found.saturated} of {found.measured} measurements the "
        "load generator (the squall engine) was itself the bottleneck"
        + (f" ({'; '.join(reasons)})" if reasons else "")
        + ", so the row's figures are the generator's limit, not the target's."
    )


def render_result(result: Mapping[str, Any]) -> str:
    """One benchmark's section: title, its table, its goals, how it was run.

    A table row whose measurements recorded a saturated load generator is marked so, with
    a note saying why (the result's pre-formatted rows themselves are left as they are).
    """
    parts = [f"### {result['title']}", ""]
    if result.get("quick"):
        parts += ["_Quick (smoke) run: short durations; not a figure to quote._", ""]
    table = result.get("table") or {}
    saturated = saturation(result)
    if table.get("columns"):
        parts += [
            markdown_table(table["columns"], _marked_rows(table.get("rows", []), saturated)),
            "",
        ]
    goals = result.get("goals") or []
    if goals:
        columns: tuple[str, ...] = ("goal", "measured", "status")
        rows: list[tuple[str, ...]] = [(g["goal"], g["shown"], goal_mark(g["met"])) for g in goals]
        if any("rounds_shown" in g for g in goals):
            columns += ("each round",)
            rows = [(*row, g.get("rounds_shown", "—")) for row, g in zip(rows, goals, strict=True)]
        parts += [markdown_table(columns, rows), ""]
    notes = [*(result.get("notes") or [])]
    notes += [_saturation_note(label, found) for label, found in saturated.items()]
    for note in notes:
        parts.append(f"- {note}")
    if notes:
        parts.append("")
    load = result.get("loadavg") or {}
    before, after = load.get("before"), load.get("after")
    load_text = ""
    if before and after:
        load_text = f"; load average {before[0]:.2f} before, {after[0]:.2f} after"
    machine = result.get("environment")
    machine_text = f" · {machine_line(machine)}" if machine else ""
    parts.append(
        f"<sub>`{result.get('command', '')}` · {result.get('started_at', '')} · "
        f"{result.get('duration_s', 0):.0f} s{load_text}{machine_text}</sub>"
    )
    return "\n".join(parts)


def machine_line(environment: Mapping[str, Any]) -> str:
    """``CPU model, N cores, Python X, platform`` of a result's environment."""
    return (
        f"{environment.get('cpu_model', '?')}, {environment.get('cpu_count', '?')} cores, "
        f"Python {environment.get('python', '?')}, {environment.get('platform', '?')}"
    )


def render_summary(
    results: Sequence[Mapping[str, Any]],
    environment: Mapping[str, Any],
    missing: Sequence[str] = (),
) -> str:
    """The whole markdown summary: environment line, then each benchmark in order.

    ``environment`` is the machine the header names when every result was measured on
    it; results from more than one machine are said to be so, and each section's
    footer names its own. Each benchmark named in ``missing`` (no result file that
    could be read) gets a line saying so, after the results.
    """
    versions = environment.get("versions") or {}
    shown = ", ".join(f"{k} {v}" for k, v in sorted(versions.items()) if v)
    machines = {machine_line(r["environment"]) for r in results if r.get("environment")}
    if len(machines) > 1:
        machine = (
            f"Machines: these results come from {len(machines)} different machines; each "
            "section's footer names the one it was measured on, and figures of different "
            "sections do not compare."
        )
    else:
        machine = f"Machine: {machines.pop() if machines else machine_line(environment)}."
    head = [
        "# squall benchmarks",
        "",
        machine,
        "",
        f"Versions: {shown}." if shown else "",
        "",
        "Ratios compare measurements of the same run; absolute rates on a shared "
        "2-core machine are noise. Regenerate with `make bench` (or `python -m bench`).",
        "",
    ]
    body = [render_result(r) for r in results]
    body += [
        f"_No results for {name}: run `python -m bench --only {name}` to measure it._"
        for name in missing
    ]
    return "\n".join([*head, "\n\n".join(body), ""])


def replace_between(text: str, start: str, end: str, content: str) -> str:
    """``text`` with everything between the ``start`` and ``end`` markers replaced.

    Raises ValueError naming the missing marker when either is absent or they
    are out of order, so a README without the markers is never rewritten blindly.
    """
    head, found, rest = text.partition(start)
    if not found:
        raise ValueError(f"marker {start!r} not found; add it where the table belongs")
    _, found_end, tail = rest.partition(end)
    if not found_end:
        raise ValueError(f"marker {end!r} not found after {start!r}; add it after the table")
    return f"{head}{start}\n{content.strip()}\n{end}{tail}"
