"""Follow agent runs through a stream of server frames (pure, no sockets).

A socket of the reference protocol interleaves acks, thread events of several
runs and errors. :class:`RunTracker` turns that stream into one
:class:`RunObservation` per message sent: when it was acknowledged, when its
first event arrived, how it ended, which sequence numbers it carried. Times
are whatever monotonic clock the caller passes in.

An ``error`` rejects the message whose ``client_msg_id`` it echoes. The platform
echoes it whenever the offending frame carried one it could read, so an error
without ids (no ``client_msg_id``, no ``thread_id``) whose code is one a frame gets
when it cannot be read or parsed (:data:`FRAME_REJECTIONS`: a frame over
``SQUALL_MAX_FRAME_BYTES``, JSON it refuses) answers a frame of this socket whose id
it could not read. A socket answers its messages in the order sent, so when exactly
one message of the socket awaits its answer (no ``ack``, no ``error`` yet), that
error is its rejection. Any other error that rejects no waiting message — the
late answer of a message given up on, a replay's (with only a ``thread_id``), an
id-less one of another code (a failure of the socket's background work, or at
admission, before the socket is closed), or an id-less rejection while several
messages await their answers — is kept in ``unmatched_errors`` and rejects nothing.

A socket the platform refuses (at admission: too many sockets, Redis out of reach) gets
an id-less error, then a close whose reason is that error's code (:func:`refusal`):
counted as that server error, once, whether or not its error frame was read first
(:func:`announced`), not as a bare closed socket.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

AGENT_EVENTS = (
    "agent_started",
    "tool_executing",
    "tool_completed",
    "agent_thinking",
    "agent_completed",
)


#: The codes the reference platform gives a frame it cannot read or parse
#: (docs/protocol.md, "Error codes"). Every other error answering a message echoes its id.
FRAME_REJECTIONS = frozenset(
    {"bad_frame", "unknown_type", "frame_too_large", "content_too_large", "invalid_field"}
)

#: Every code of the reference platform's errors (docs/protocol.md, "Error codes").
ERROR_CODES = frozenset(
    {
        *FRAME_REJECTIONS,
        "not_found",
        "insufficient_credits",
        "queue_full",
        "rate_limited",
        "too_many_sockets",
        "shutting_down",
        "unavailable",
        "internal",
    }
)

#: The close codes with which the reference platform refuses a socket (docs/protocol.md,
#: "Close codes"): 1008 (too many sockets; a slow consumer too, whose reason is no error
#: code) and 1013 (try again later: Redis out of reach at admission).
REFUSAL_CLOSES = frozenset({1008, 1013})


class RunStatus(enum.StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"


_END_STATES = {s.value: s for s in (RunStatus.COMPLETED, RunStatus.CANCELLED, RunStatus.FAILED)}


@dataclass
class RunObservation:
    """What one socket saw of one message and the run it started."""

    client_msg_id: str
    thread_id: str
    sent_at: float
    run_id: str | None = None
    ack_at: float | None = None
    first_event_at: float | None = None
    completed_at: float | None = None
    status: RunStatus = RunStatus.PENDING
    error_code: str | None = None
    events: list[str] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    context_chars: int | None = None
    context_tokens: int | None = None
    charge: int | None = None
    #: Server timestamp (``ts``) of the first event of each kind.
    server_ts: dict[str, float] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.status is not RunStatus.PENDING

    @property
    def ack_time(self) -> float | None:
        return None if self.ack_at is None else self.ack_at - self.sent_at

    @property
    def first_event_time(self) -> float | None:
        return None if self.first_event_at is None else self.first_event_at - self.sent_at

    @property
    def response_time(self) -> float | None:
        return None if self.completed_at is None else self.completed_at - self.sent_at


@dataclass
class SeqGap:
    """A thread's events arrived out of order on one socket: ``expected`` then ``got``."""

    thread_id: str
    expected: int
    got: int


@dataclass(frozen=True)
class ServerError:
    """An error the server sent that rejected no message waiting for its answer."""

    code: str
    message: str
    #: The ids the error echoed, if any.
    client_msg_id: str | None = None
    thread_id: str | None = None

    def describe(self) -> str:
        """One line for an error sample."""
        if self.client_msg_id is not None:
            about = f"for message {self.client_msg_id}, which awaits no answer"
        elif self.thread_id is not None:
            about = f"for thread {self.thread_id}, naming no message"
        else:
            about = "naming no message"
        return f"error {self.code} {about}: {self.message}"

    @property
    def names_nothing(self) -> bool:
        """Whether the error echoes no id: it concerns a frame it could not read, or the
        socket itself."""
        return self.client_msg_id is None and self.thread_id is None


def refusal(close_code: int | None, reason: str, unread: Sequence[ServerError]) -> str | None:
    """The code of the error with which the reference platform refused a socket it closed
    with ``close_code`` and ``reason``; None for a close that refuses nothing.

    A refusal closes with one of :data:`REFUSAL_CLOSES`, its reason the error's code, after
    the error frame (docs/protocol.md, "Error codes"). ``unread`` are the errors of the
    frames the socket had not read at the close: an id-less one among them names the
    refusal when the reason does not (the last one: the frame just before the close). A
    1008 for a slow consumer, whose reason is no code, is no refusal.
    """
    if close_code not in REFUSAL_CLOSES:
        return None
    if reason in ERROR_CODES:
        return reason
    for error in reversed(unread):
        if error.names_nothing:
            return error.code
    return None


def announced(errors: Sequence[ServerError], code: str) -> bool:
    """Whether the error frame that announced a refusal with ``code`` is among ``errors``
    (a socket's unmatched errors, oldest first): the last of them that echoes no id has
    that code. Its frame is counted with the other unmatched errors, so the close that
    follows it must not count it again."""
    for error in reversed(errors):
        if error.names_nothing:
            return error.code == code
    return False


class RunTracker:
    """Match frames to the messages this socket sent; check per-thread seq continuity."""

    def __init__(self) -> None:
        self._by_client_id: dict[str, RunObservation] = {}
        self._by_run_id: dict[str, RunObservation] = {}
        #: Messages sent whose ``ack`` or ``error`` has not come (yet), oldest first.
        self._unanswered: dict[str, RunObservation] = {}
        self.last_seq: dict[str, int] = {}
        self.gaps: list[SeqGap] = []
        self.foreign_events: list[Mapping[str, Any]] = []
        self.unmatched_errors: list[ServerError] = []

    def sent(self, client_msg_id: str, thread_id: str, now: float) -> RunObservation:
        observation = RunObservation(client_msg_id=client_msg_id, thread_id=thread_id, sent_at=now)
        self._by_client_id[client_msg_id] = observation
        self._unanswered[client_msg_id] = observation
        return observation

    def resumed(self, thread_id: str, after_seq: int) -> None:
        """A ``resume`` was sent: the next event of the thread must be ``after_seq + 1``."""
        self.last_seq[thread_id] = after_seq

    def feed(self, frame: Mapping[str, Any], now: float) -> RunObservation | None:
        """Consume one server frame; return the observation it finished, if any."""
        kind = frame.get("type")
        if kind == "ack":
            client_msg_id = str(frame.get("client_msg_id"))
            self._unanswered.pop(client_msg_id, None)
            observation = self._by_client_id.get(client_msg_id)
            if observation is not None:
                observation.ack_at = now
                observation.run_id = str(frame.get("run_id"))
                self._by_run_id[observation.run_id] = observation
            return None
        if kind == "error":
            return self._error(frame, now)
        if kind in AGENT_EVENTS:
            return self._event(frame, str(kind), now)
        return None

    def _error(self, frame: Mapping[str, Any], now: float) -> RunObservation | None:
        """Reject the message ``frame`` answers (see the module's docstring)."""
        code = str(frame.get("code"))
        client_msg_id, thread_id = frame.get("client_msg_id"), frame.get("thread_id")
        observation: RunObservation | None = None
        if client_msg_id is not None:
            observation = self._by_client_id.get(str(client_msg_id))
            self._unanswered.pop(str(client_msg_id), None)
        elif thread_id is None and code in FRAME_REJECTIONS and len(self._unanswered) == 1:
            # The answer of the socket's only message awaiting one (or the late answer of
            # the one given up on).
            _, observation = self._unanswered.popitem()
        if observation is None or observation.done:
            self.unmatched_errors.append(
                ServerError(
                    code=code,
                    message=str(frame.get("message", "")),
                    client_msg_id=None if client_msg_id is None else str(client_msg_id),
                    thread_id=None if thread_id is None else str(thread_id),
                )
            )
            return None
        observation.status = RunStatus.REJECTED
        observation.error_code = code
        observation.completed_at = now
        return observation

    def _event(self, frame: Mapping[str, Any], kind: str, now: float) -> RunObservation | None:
        thread_id = str(frame.get("thread_id"))
        seq = frame.get("seq")
        if isinstance(seq, int):
            last = self.last_seq.get(thread_id)
            if last is not None and seq != last + 1:
                self.gaps.append(SeqGap(thread_id=thread_id, expected=last + 1, got=seq))
            self.last_seq[thread_id] = max(seq, last or 0)
        observation = self._by_run_id.get(str(frame.get("run_id")))
        if observation is None:
            self.foreign_events.append(frame)
            return None
        observation.events.append(kind)
        ts = frame.get("ts")
        if isinstance(ts, int | float):
            observation.server_ts.setdefault(kind, float(ts))
        if isinstance(seq, int):
            observation.seqs.append(seq)
        if observation.first_event_at is None:
            observation.first_event_at = now
        if kind == "agent_started":
            context = frame.get("context") or {}
            observation.context_chars = context.get("chars")
            observation.context_tokens = context.get("tokens")
        if kind == "agent_completed":
            observation.completed_at = now
            observation.charge = frame.get("charge")
            status = str(frame.get("status", "completed"))
            observation.status = _END_STATES.get(status, RunStatus.FAILED)
            return observation
        return None

    def expire(self, observation: RunObservation, now: float) -> None:
        """Give up waiting for ``observation``: its outcome is unknown."""
        if not observation.done:
            observation.status = RunStatus.TIMED_OUT
            observation.completed_at = None

    @property
    def pending(self) -> list[RunObservation]:
        return [o for o in self._by_client_id.values() if not o.done]
