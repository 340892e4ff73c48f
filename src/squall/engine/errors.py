"""Exceptions the engine raises; each names what failed, what was expected and the fix.

Errors that happen on the wire (:class:`ConnectError`, :class:`ConnectionClosed`,
:class:`UnexpectedMessage`) are counted in the recorder where they happen, so a
behaviour that catches them still leaves them in the results; ``recorded``
tells the runner not to count them twice. :class:`MessageTimeout` is counted
in ``timeouts``, not in ``errors``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sysconfig
import traceback
from collections import Counter
from pathlib import Path


class EngineError(Exception):
    """Base class: ``kind`` is the suffix of the ``errors.<kind>`` counter."""

    kind = "engine"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.recorded = False


class ScenarioError(EngineError):
    """A scenario definition cannot be run (bad behaviour path, unpicklable factory...)."""

    kind = "scenario"


class ConnectError(EngineError):
    """A WebSocket connection or its HTTP upgrade failed."""

    kind = "connect"

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ConnectionClosed(EngineError):
    """The connection closed while a message was being sent or awaited."""

    kind = "closed"

    def __init__(self, message: str, code: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class InboxOverflow(EngineError):
    """Messages arrived faster than the behaviour read them, up to the socket's
    ``max_unread``: the socket was closed (recorded when it happens, never raised)."""

    kind = "inbox_overflow"


class SendTimeout(EngineError):
    """The target took no data for the whole timeout while a message waited to be sent
    (the transport's buffer stayed above its high-water mark)."""

    kind = "send_timeout"


class MessageTimeout(EngineError):
    """No (matching) message arrived in time."""

    kind = "timeout"


class UnexpectedMessage(EngineError):
    """A message was not what the behaviour asked for (e.g. not a JSON object)."""

    kind = "protocol"


class WorkerFailed(EngineError):
    """A worker process crashed or never reported; the message carries its traceback."""

    kind = "worker"


def describe(exc: BaseException) -> str:
    """``exc``'s message and where it was raised, for an error sample: its kind (the
    exception's type) is shown beside it, so the type is not repeated.

    An exception group (a ``TaskGroup``'s "unhandled errors") says what it holds and
    describes the first of them, type included: its own message names no cause.
    """
    if isinstance(exc, BaseExceptionGroup):
        return _describe_group(exc)
    text = str(exc) or "(no message)"
    where = raised_at(exc)
    return text if where is None else f"{text} (at {where})"


def _describe_group(group: BaseExceptionGroup[BaseException]) -> str:
    """``unhandled errors in a TaskGroup (10 TooManyConnectionsError); the first:
    TooManyConnectionsError: too many connections … (at …)``."""
    leaves = _leaves(group)
    kinds = Counter(type(exc).__name__ for exc in leaves)
    held = ", ".join(f"{count} {kind}" for kind, count in kinds.most_common())
    first = leaves[0]
    return f"{group.message} ({held}); the first: {type(first).__name__}: {describe(first)}"


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    """The exceptions a group holds, those of the groups inside it included, in order."""
    found: list[BaseException] = []
    for exc in group.exceptions:
        found.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return found


def raised_at(exc: BaseException) -> str | None:
    """Where ``exc`` was raised, as ``file:line in function``: the innermost frame of the
    user's own code (a scenario, an adapter), else of squall, else of any library."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return None
    installed = _installed_dirs()
    own = str(Path(__file__).resolve().parents[1]) + os.sep
    # "<frozen importlib...>", "<string>": no file of anyone's to point at.
    real = [f for f in frames if not f.filename.startswith("<")]
    user = [f for f in real if not f.filename.startswith((*installed, own))]
    not_library = [f for f in real if not f.filename.startswith(installed)]
    frame = (user or not_library or frames)[-1]
    shown = frame.filename
    with contextlib.suppress(ValueError):
        shown = str(Path(frame.filename).relative_to(Path.cwd()))
    return f"{shown}:{frame.lineno} in {frame.name}"


@functools.cache
def _installed_dirs() -> tuple[str, ...]:
    """The Python installation's library folders (the standard library, site-packages)."""
    paths = sysconfig.get_paths()
    found = {str(Path(paths[key]).resolve()) + os.sep for key in ("stdlib", "purelib", "platlib")}
    return tuple(sorted(found))
