"""Exceptions the engine raises; each names what failed, what was expected and the fix.

Errors that happen on the wire (:class:`ConnectError`, :class:`ConnectionClosed`,
:class:`UnexpectedMessage`) are counted in the recorder where they happen, so a
behaviour that catches them still leaves them in the results; ``recorded``
tells the runner not to count them twice. :class:`MessageTimeout` is counted
in ``timeouts``, not in ``errors``.
"""

from __future__ import annotations


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


class MessageTimeout(EngineError):
    """No (matching) message arrived in time."""

    kind = "timeout"


class UnexpectedMessage(EngineError):
    """A message was not what the behaviour asked for (e.g. not a JSON object)."""

    kind = "protocol"


class WorkerFailed(EngineError):
    """A worker process crashed or never reported; the message carries its traceback."""

    kind = "worker"
