"""The consoles squall's commands print to.

Neither turns ``:name:`` into an emoji: names and ids squall echoes back (a scenario
called ``:fire:``, an adapter ``a:b:c``) are printed as given.
"""

from __future__ import annotations

from rich.console import Console

#: Width used when output goes to a pipe or a CI log instead of a terminal.
PIPE_WIDTH = 160


def output_console() -> Console:
    """Standard output; tables squeezed to 80 columns are unreadable in CI logs and pipes."""
    console = Console(emoji=False)
    return console if console.is_terminal else Console(width=PIPE_WIDTH, emoji=False)


def error_console() -> Console:
    """Standard error, never wrapping a message mid-sentence."""
    return Console(stderr=True, soft_wrap=True, emoji=False)
