"""Standard output that cannot end a command: a run outlives the terminal it prints to.

A reader that goes away (``squall run | head -1``, ``| grep -q``), a full device
(``> /dev/full``), a closed descriptor (``>&-``, as some daemons and schedulers start
commands) or an encoding without a character squall prints (``✗`` in a Latin-1 locale)
each raised out of a command once its run had ended, before its files were written: exit
code 1 and no report. Under :func:`forgiving_stdout` the first failure of standard output
is said once on standard error, what is printed after it is dropped, and the command goes
on to write its results and exit with its own code.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Iterator
from typing import Any, TextIO, cast


class ForgivingOutput:
    """``stream`` whose ``write`` and ``flush`` never raise :class:`OSError` nor
    :class:`UnicodeEncodeError`. A character its encoding lacks is written as ``?``. At
    the first ``OSError`` the descriptor is pointed at the null device (so Python's own
    flush at exit finds nothing to fail on), ``note`` is told why, and later writes are
    dropped. Anything else is the stream's own."""

    def __init__(self, stream: TextIO, note: TextIO | None) -> None:
        self._stream = stream
        self._note = note
        #: The error that ended the output; None while it works.
        self.failed: OSError | None = None

    def write(self, text: str) -> int:
        if self.failed is None:
            try:
                try:
                    return self._stream.write(text)
                except UnicodeEncodeError:
                    return self._stream.write(self._encodable(text))
            except OSError as exc:
                self._fail(exc)
        return len(text)

    def flush(self) -> None:
        if self.failed is None:
            try:
                self._stream.flush()
            except OSError as exc:
                self._fail(exc)

    def isatty(self) -> bool:
        return self.failed is None and self._stream.isatty()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def _encodable(self, text: str) -> str:
        encoding = self._stream.encoding or "utf-8"
        return text.encode(encoding, errors="replace").decode(encoding)

    def _fail(self, exc: OSError) -> None:
        self.failed = exc
        with contextlib.suppress(OSError, ValueError):
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(null, self._stream.fileno())
            finally:
                os.close(null)
            self._stream.flush()  # what was buffered goes to the null device
        self._say(exc)

    def closed_from_the_start(self) -> None:
        """Standard output was closed when the command started (``>&-``): nothing printed
        reaches anyone, which is said once, as a failure is."""
        self.failed = OSError(errno.EBADF, os.strerror(errno.EBADF))
        self._say(self.failed)

    def _say(self, exc: OSError) -> None:
        if self._note is not None:
            with contextlib.suppress(OSError, ValueError):
                self._note.write(
                    f"squall: standard output failed ({exc.strerror or exc}): the rest is not "
                    "printed; the command goes on, and a run's result files are written as "
                    "usual\n"
                )
                self._note.flush()


@contextlib.contextmanager
def forgiving_stdout() -> Iterator[ForgivingOutput]:
    """While inside, ``sys.stdout`` is a :class:`ForgivingOutput` (on the null device when
    standard output was closed; so is ``sys.stderr`` when it was); the previous ones are
    back afterwards."""
    closed = _reopen_closed_descriptors()
    previous, previous_err = sys.stdout, sys.stderr
    with contextlib.ExitStack() as opened:
        stream = previous or opened.enter_context(open(os.devnull, "w"))
        if previous_err is None:
            sys.stderr = opened.enter_context(open(os.devnull, "w"))
        guarded = ForgivingOutput(stream, sys.stderr)
        if 1 in closed:
            guarded.closed_from_the_start()
        sys.stdout = cast(TextIO, guarded)
        try:
            yield guarded
        finally:
            sys.stdout, sys.stderr = previous, previous_err


def _reopen_closed_descriptors() -> set[int]:
    """Point a closed descriptor 1 or 2 at the null device: the next file this process
    opened would take the number, and what is printed, or a child's output, would go
    into that file. Inheritable, as 1 and 2 are: a child (``squall test``'s pytest) would
    find its standard output closed. Returns the descriptors that were closed."""
    closed = set()
    for descriptor in (1, 2):
        try:
            os.fstat(descriptor)
        except OSError:
            closed.add(descriptor)
            null = os.open(os.devnull, os.O_WRONLY)
            if null != descriptor:
                os.dup2(null, descriptor)
                os.close(null)
            os.set_inheritable(descriptor, True)
    return closed
