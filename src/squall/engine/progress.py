"""Live progress: a rich panel on a terminal, one plain line a second otherwise.

Progress consumes :class:`~squall.engine.series.ProgressView` values; when the
generator is saturated the warning is printed prominently, because the numbers
beside it then describe the generator, not the target.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Protocol, TextIO

from rich.console import Console
from rich.live import Live
from rich.text import Text

from squall.engine.series import ProgressView
from squall.metrics.result import RunResult


class ProgressSink(Protocol):
    def update(self, view: ProgressView) -> None: ...

    def close(self, result: RunResult | None) -> None: ...


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:.1f}ms"


def describe(view: ProgressView) -> str:
    """One line: elapsed/remaining, users, connections, rates, latency, errors."""
    remaining = "" if view.remaining_s is None else f" (-{view.remaining_s:.0f}s)"
    conns = str(view.connections)
    if view.connections_peak > view.connections:
        conns += f" (peak {view.connections_peak})"
    line = (
        f"[{view.elapsed_s:6.1f}s{remaining}] users {view.users} conns {conns} "
        f"sent {view.sent_per_s:.0f}/s recv {view.received_per_s:.0f}/s "
        f"p50 {_ms(view.p50)} p99 {_ms(view.p99)} errors {view.errors}"
    )
    if view.warning:
        line += f"  !! {view.warning}"
    return line


def summary_line(result: RunResult) -> str:
    line = (
        f"{result.scenario}: {result.duration_s:.1f}s, {result.processes} process(es), "
        f"sent {result.count('messages_sent')}, received {result.count('messages_received')}, "
        f"timeouts {result.count('timeouts')}, errors {result.count('errors')}"
    )
    if result.interrupted:
        line += f", interrupted ({result.interrupted_reason})"
    return line


class PlainProgress:
    """One line per second, for logs and CI."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout

    def update(self, view: ProgressView) -> None:
        print(describe(view), file=self._stream, flush=True)

    def close(self, result: RunResult | None) -> None:
        if result is None:
            return
        print(summary_line(result), file=self._stream, flush=True)
        if result.generator.warning:
            print(f"WARNING: {result.generator.warning}", file=self._stream, flush=True)


class RichProgress:
    """A live-updating line on a terminal."""

    def __init__(self, console: Console | None = None) -> None:
        self._console = console or Console()
        self._live = Live(Text("starting..."), console=self._console, refresh_per_second=4)
        self._live.start()

    def update(self, view: ProgressView) -> None:
        text = Text(describe(view).split("  !! ")[0])
        if view.warning:
            text.append(f"\n{view.warning}", style="bold red")
        self._live.update(text)

    def close(self, result: RunResult | None) -> None:
        self._live.stop()
        if result is None:
            return
        self._console.print(summary_line(result))
        if result.generator.warning:
            self._console.print(f"WARNING: {result.generator.warning}", style="bold red")


class CallbackProgress:
    """Hands every view to a callable (and nothing at the end)."""

    def __init__(self, callback: Callable[[ProgressView], None]) -> None:
        self._callback = callback

    def update(self, view: ProgressView) -> None:
        self._callback(view)

    def close(self, result: RunResult | None) -> None:
        return None


class NoProgress:
    def update(self, view: ProgressView) -> None:
        return None

    def close(self, result: RunResult | None) -> None:
        return None


def progress_sink(progress: bool | Callable[[ProgressView], None]) -> ProgressSink:
    """The sink for ``run_scenario(progress=...)``: rich on a terminal that redraws, plain
    text otherwise (a pipe, a file, or a terminal of ``TERM=dumb``, where rich's live line
    showed nothing until the end)."""
    if callable(progress):
        return CallbackProgress(progress)
    if not progress:
        return NoProgress()
    if sys.stdout.isatty() and not Console().is_dumb_terminal:
        return RichProgress()
    return PlainProgress()
