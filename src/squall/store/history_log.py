"""``history.jsonl``: the operation records of a run, one JSON object per line.

The log is append-only and written as the run goes, so a run that crashes
still leaves the history up to its last flush for the checkers. Records are
buffered in memory up to ``buffer_ops`` and then written and flushed: the
buffer is bounded, and a crash loses at most that many records (a torn last
line is skipped on read with ``tolerate_torn_tail``).

Writes are plain blocking file writes of a few KiB; they are called from the
event loop without an executor because each is far shorter than a network
round trip. There is no other backpressure.

A file that cannot be opened or written (a full disk, a folder made read-only) does not
stop the run: the log keeps the error (:attr:`HistoryLog.error`), removes what it had
written (a history cut short is not left as if it were whole) and takes no more records.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from types import TracebackType
from typing import TextIO

from squall.checks.history import HistoryError, Op


class HistoryLogError(ValueError):
    """A history file that cannot be read back; the message names the file and line."""


class HistoryLog:
    """Appends :class:`Op` records to a JSONL file; use as a context manager or call close()."""

    def __init__(self, path: str | Path, *, buffer_ops: int = 256) -> None:
        if buffer_ops < 1:
            raise ValueError(f"buffer_ops={buffer_ops}: must be at least 1")
        self.path = Path(path)
        self._buffer_ops = buffer_ops
        self._buffer: list[str] = []
        self.written = 0
        #: Why the file could not be written; None while it can.
        self.error: OSError | None = None
        self._file: TextIO | None = None
        try:
            self._file = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            self._give_up(exc)

    def __repr__(self) -> str:
        return (
            f"HistoryLog({str(self.path)!r}, written={self.written}, "
            f"buffered={len(self._buffer)}, closed={self._file is None})"
        )

    def append(self, op: Op) -> None:
        """Buffer ``op``; write and flush when the buffer is full (nothing once writing
        failed: :attr:`error`)."""
        if self.error is not None:
            return
        if self._file is None:
            raise ValueError(f"{self!r} is closed; open a new HistoryLog to append")
        self._buffer.append(json.dumps(op.to_dict(), separators=(",", ":")))
        if len(self._buffer) >= self._buffer_ops:
            self.flush()

    def flush(self) -> None:
        """Write every buffered record and flush the file to the OS."""
        if self._file is None or not self._buffer:
            return
        try:
            self._file.write("\n".join(self._buffer) + "\n")
            self._file.flush()
        except OSError as exc:
            self._give_up(exc)
            return
        self.written += len(self._buffer)
        self._buffer.clear()

    def close(self) -> None:
        if self._file is None:
            return
        self.flush()
        if self._file is None:  # the flush failed
            return
        try:
            self._file.close()
        except OSError as exc:
            self._give_up(exc)
        self._file = None

    def _give_up(self, exc: OSError) -> None:
        """Keep ``exc``, drop the buffer and remove the file written so far."""
        self.error = exc
        self._buffer.clear()
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> HistoryLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def read_history(path: str | Path, *, tolerate_torn_tail: bool = True) -> list[Op]:
    """Every record in ``path``, in file order.

    A last line without its newline is what a crash mid-write leaves; it is
    skipped when ``tolerate_torn_tail`` (the default) and it does not parse.
    Any other bad line raises :class:`HistoryLogError` naming the line.
    """
    file = Path(path)
    text = file.read_text(encoding="utf-8")
    lines = text.split("\n")
    torn_tail = lines[-1] != ""
    ops = []
    for number, line in enumerate(lines, start=1):
        if not line:
            continue
        try:
            data = json.loads(line)
            if not isinstance(data, dict):
                raise HistoryError(f"expected a JSON object, got {type(data).__name__}")
            ops.append(Op.from_dict(data))
        except (json.JSONDecodeError, HistoryError) as exc:
            if tolerate_torn_tail and torn_tail and number == len(lines):
                break
            raise HistoryLogError(
                f"{file}:{number}: not an operation record ({exc}); the file must hold one "
                "Op.to_dict() JSON object per line"
            ) from exc
    return ops
