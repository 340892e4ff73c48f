"""The consoles squall's commands print to, and how text from outside goes into them.

Neither turns ``:name:`` into an emoji: names and ids squall echoes back (a scenario
called ``:fire:``, an adapter ``a:b:c``) are printed as given. :func:`literal` does the
same for markup and control characters.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from squall.report.printable import one_line, printable

#: Width used when output goes to a pipe or a CI log instead of a terminal.
PIPE_WIDTH = 160


def output_console() -> Console:
    """Standard output; tables squeezed to 80 columns are unreadable in CI logs and pipes."""
    console = Console(emoji=False)
    return console if console.is_terminal else Console(width=PIPE_WIDTH, emoji=False)


def error_console() -> Console:
    """Standard error, never wrapping a message mid-sentence."""
    return Console(stderr=True, soft_wrap=True, emoji=False)


def literal(text: object) -> str:
    """``text`` as console markup that prints as given: ``[brackets]`` are no style (rich
    would drop ``[ws]`` from ``chat[ws]`` and fail on ``[/]``) and control characters
    show as escapes (:func:`~squall.report.printable.printable`). For any text squall did
    not write itself: names, ids, messages, expressions, table cells."""
    return escape(printable(text))


def literal_line(text: object) -> str:
    """:func:`literal` on one line: tabs and newlines shown as ``\\t`` and ``\\n`` too. For
    text a target controls that must not start a line of its own (an error kind, a sample,
    a threshold's metric), where a newline could print a line that reads like squall's."""
    return escape(one_line(text))
