"""The consoles squall's commands print to."""

from __future__ import annotations

from rich.console import Console

#: Width used when output goes to a pipe or a CI log instead of a terminal.
PIPE_WIDTH = 160


def output_console() -> Console:
    """Standard output; tables squeezed to 80 columns are unreadable in CI logs and pipes."""
    console = Console()
    return console if console.is_terminal else Console(width=PIPE_WIDTH)


def error_console() -> Console:
    """Standard error, never wrapping a message mid-sentence."""
    return Console(stderr=True, soft_wrap=True)
