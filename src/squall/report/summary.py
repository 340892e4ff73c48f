"""The terminal summary: one table row per scenario × threshold, then the verdict."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

from squall.metrics.result import Counter, Metric, error_summaries_of
from squall.metrics.thresholds import OutcomeStatus
from squall.report.console import literal, literal_line
from squall.suite import ScenarioOutcome, SuiteReport

_STATUS_STYLE = {
    OutcomeStatus.PASSED: "[green]pass[/green]",
    OutcomeStatus.FAILED: "[bold red]FAIL[/bold red]",
    OutcomeStatus.NOT_APPLICABLE: "[dim]n/a[/dim]",
}


def scenario_table(outcome: ScenarioOutcome) -> Table | None:
    """A scenario's own table (e.g. db_race's per-strategy figures), if it has one."""
    if outcome.table is None:
        return None
    columns, rows = outcome.table
    table = Table(title=literal(outcome.name), title_justify="left")
    for column in columns:
        table.add_column(literal(column))
    for row in rows:
        table.add_row(*map(literal, row))
    return table


def _nothing_observed(metric: Metric) -> str:
    """What a threshold on ``metric``, recorded but not applicable, had nothing of."""
    return "no rate per second" if isinstance(metric, Counter) else "no samples"


def thresholds_table(report: SuiteReport) -> Table:
    """Every judged threshold, and the not applicable ones whose metric was recorded but
    had nothing to judge (a trend or rate with no samples); those on a metric the scenario
    does not record are left out (:func:`print_summary` counts them)."""
    table = Table(title="Thresholds", title_justify="left")
    for column in ("scenario", "metric", "threshold", "observed", "result"):
        table.add_column(column)
    for scenario in report.scenarios:
        for outcome in scenario.outcomes:
            shown = outcome.shown
            if outcome.status is OutcomeStatus.NOT_APPLICABLE:
                metric = scenario.metrics.get(outcome.metric)
                if metric is None:
                    continue
                shown = _nothing_observed(metric)
            table.add_row(
                literal_line(scenario.name),
                literal_line(outcome.metric),
                literal_line(outcome.expression),
                literal_line(shown),
                _STATUS_STYLE[outcome.status],
            )
    return table


#: How many error kinds (the most frequent) the summary shows a sample message of.
SAMPLED_ERROR_KINDS = 3
#: A sample message is cut to this many characters in the terminal (report.json has it whole).
SAMPLE_CHARS = 200


def first_error_samples(result: Mapping[str, Any] | None) -> dict[str, str]:
    """The first sample message of each error kind in a load scenario's result (its
    ``errors``: ``{"kind", "count", "samples"}`` each), cut to :data:`SAMPLE_CHARS`."""
    found: dict[str, str] = {}
    for entry in error_summaries_of(result):
        if entry.samples:
            text = entry.samples[0]
            found[entry.kind] = (
                text if len(text) <= SAMPLE_CHARS else text[: SAMPLE_CHARS - 1] + "…"
            )
    return found


def error_counts(metrics: Mapping[str, Metric]) -> list[tuple[str, int]]:
    """``errors.<kind>`` counters that counted something, most frequent first."""
    found = [
        (name.removeprefix("errors."), metric.count)
        for name, metric in metrics.items()
        if name.startswith("errors.") and isinstance(metric, Counter) and metric.count
    ]
    return sorted(found, key=lambda item: (-item[1], item[0]))


#: Error kinds a scenario's summary names, the commonest first; report.json has them all.
LISTED_ERROR_KINDS = 10


def print_scenario(console: Console, outcome: ScenarioOutcome) -> None:
    """What to show as soon as one scenario has finished. Notes and error lines are
    never wrapped (a log keeps each on one line, for grep); the terminal wraps them."""
    verdict = outcome.verdict
    if not outcome.ran:
        console.print(f"[bold]{literal(outcome.name)}[/bold] [dim]not run[/dim]")
    else:
        if not verdict.ok:
            mark = "[bold red]FAILED[/bold red]"
        elif outcome.cut_short:
            # Not "passed": what it measured is partial, and may be nothing at all.
            mark = "[yellow]interrupted[/yellow] (no threshold failed on its partial results)"
        else:
            mark = "[green]passed[/green]"
        console.print(f"[bold]{literal(outcome.name)}[/bold] {mark} in {outcome.duration_s:.1f} s")
    for note in outcome.notes:
        console.print(f"  [yellow]! {literal(note)}[/yellow]", soft_wrap=True)
    timeouts = outcome.metrics.get("timeouts")
    if isinstance(timeouts, Counter) and timeouts.count:
        console.print(f"  [red]timeouts: {timeouts.count} (no answer within the timeout)[/red]")
    errors = error_counts(outcome.metrics)
    if errors:
        listed = ", ".join(f"{kind} {count}" for kind, count in errors[:LISTED_ERROR_KINDS])
        if len(errors) > LISTED_ERROR_KINDS:
            listed += f" and {len(errors) - LISTED_ERROR_KINDS} more kinds (report.json)"
        console.print(
            f"  [red]errors: {literal_line(listed)}[/red]", soft_wrap=True, highlight=False
        )
        samples = first_error_samples(outcome.result)
        for kind, _ in errors[:SAMPLED_ERROR_KINDS]:
            if kind in samples:
                console.print(
                    f"    [red]{literal_line(kind)}: {literal_line(samples[kind])}[/red]",
                    soft_wrap=True,
                    highlight=False,
                )
    table = scenario_table(outcome)
    if table is not None:
        console.print(table)


def print_summary(console: Console, report: SuiteReport, *, tests_failed: bool = False) -> None:
    """The thresholds table, what failed and the verdict; ``tests_failed`` (``squall
    test``: pytest reported a failed test) makes a verdict whose thresholds all held read
    FAILED all the same, as the exit code will."""
    console.print(thresholds_table(report))
    skipped = sum(
        1
        for scenario in report.scenarios
        for o in scenario.outcomes
        if o.status is OutcomeStatus.NOT_APPLICABLE and o.metric not in scenario.metrics
    )
    if skipped:
        console.print(
            f"[dim]{skipped} threshold(s) not applicable: their metric is not recorded "
            "by that scenario (see report.json)[/dim]"
        )
    failed = [o for o in report.outcomes if o.status is OutcomeStatus.FAILED]
    for outcome in failed:
        console.print(f"[red]✗ {literal_line(outcome.diagnostic)}[/red]")
    for scenario in report.scenarios:
        if scenario.error is not None:
            console.print(f"[red]✗ {literal(f'[{scenario.name}] raised {scenario.error}')}[/red]")
    if report.interrupted:
        console.print("[yellow]interrupted: the results cover the scenarios that finished[/yellow]")
    verdict = report.verdict
    if tests_failed and verdict.ok:
        console.print(
            f"[bold red]FAILED: pytest reported failed tests (above); the thresholds shown "
            f"held ({verdict.counts})[/bold red]"
        )
        return
    if report.interrupted and verdict.ok:
        # Not "PASSED": what did not run was not judged (an interrupted run exits 130).
        console.print(f"[bold yellow]INTERRUPTED: {verdict.counts}[/bold yellow]")
        return
    if verdict.ok and not any(scenario.ran for scenario in report.scenarios):
        # Not "PASSED: 0 passed": nothing was judged (each scenario's note says why).
        console.print(
            f"[bold yellow]NOTHING RAN: none of the selected scenarios ran (the notes above "
            f"say why); {verdict.counts}[/bold yellow]"
        )
        return
    style = "bold green" if verdict.ok else "bold red"
    console.print(f"[{style}]{verdict}[/{style}]")
