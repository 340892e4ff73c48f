"""Text from outside (a target's error codes and messages, names, ids) made safe to show
(pure).

A target can put any character in what it sends; squall echoes some of it back (error
samples, ``errors.server.<code>`` metric names). Control characters would act on the
terminal (``\\x1b[2J`` clears it), make ``junit.xml`` ill-formed XML, or vanish from a page;
a lone surrogate (``\\udce9``, from bytes decoded with ``surrogateescape``) cannot be
written as UTF-8 at all. :func:`printable` shows each as its escape instead, so the text
stays readable and inert.
"""

from __future__ import annotations

import html
import re

#: C0 controls but tab and newline, DEL, C1 controls, lone surrogates (text decoded with
#: ``surrogateescape``: UTF-8 cannot encode them, so a file holding one could not be
#: written) and the two noncharacters XML refuses.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: object) -> str:
    """``str(text)`` with every control character and lone surrogate shown as its escape
    (``\\x1b``, ``\\udce9``); tabs and newlines are kept."""
    return _UNPRINTABLE.sub(_escape, str(text))


def one_line(text: object) -> str:
    """:func:`printable` for a name: tabs and newlines shown as ``\\t`` and ``\\n`` too, so
    a name taken from a target (a CI's test name, say) stays on one line."""
    return printable(text).replace("\t", "\\t").replace("\n", "\\n")


def html_text(text: object) -> str:
    """``text`` for an HTML page or SVG: escaped, control characters shown as their
    escapes (a browser would hide them, or the ``[31m`` after an ESC would show alone)."""
    return html.escape(printable(text))
