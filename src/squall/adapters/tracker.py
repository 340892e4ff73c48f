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

A socket may live for hours, so the tracker holds only what it still needs (docs/adapters.md,
"Bounded bookkeeping"): a message leaves it when its outcome is known (its run completed, or
it was rejected), leaving only its run id among the newest :data:`MAX_PAST_RUNS` runs whose
late frames it still recognises; of the messages given up on, it follows the newest
:data:`MAX_EXPIRED`. Of its findings (gaps, unmatched errors, foreign events) it keeps the
newest :data:`MAX_GAPS`, :data:`MAX_UNMATCHED` and :data:`MAX_FOREIGN` and counts the ones it
dropped, and every one in ``findings``, so the chat records each as it comes. Of a foreign
event it keeps at most :data:`MAX_FOREIGN_CHARS` characters (:func:`kept_frame`), and it
follows the seq of the threads this socket sent a message to or resumed and of the first
:data:`MAX_OTHER_THREADS` others it hears of (``threads_unfollowed`` counts the events of any
more), their ids cut to ``MAX_ID_CHARS``.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from squall.checks.history import cut_text, json_int, shown_json

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

#: Runs of this socket it no longer follows (finished, or given up on long ago) whose late
#: frames a tracker still recognises as its own, the newest; a frame of an older one is
#: foreign. Smaller than the other bounds: every run ends up here, not only failures.
MAX_PAST_RUNS = 256
#: Messages given up on (timed out) a tracker still matches a late answer to, the newest.
MAX_EXPIRED = 1_000
#: Sequence gaps a tracker keeps, the newest; older ones are only counted (``gaps_dropped``).
MAX_GAPS = 1_000
#: Unmatched errors a tracker keeps, the newest; older ones are only counted
#: (``unmatched_dropped``).
MAX_UNMATCHED = 1_000
#: Foreign events a tracker keeps, the newest; older ones are only counted
#: (``foreign_dropped``).
MAX_FOREIGN = 1_000
#: Characters of a foreign event's JSON a tracker keeps it whole up to: a larger frame is
#: kept as its type, thread, run and seq, each cut to ``MAX_ID_CHARS``, and a prefix of its
#: JSON of half as many characters (:func:`kept_frame`): under 2 KB of JSON in all.
MAX_FOREIGN_CHARS = 1_024
#: Threads this socket neither sent to nor resumed whose seqs a tracker follows besides
#: its own (the first it hears of): past them, an event's order is not checked.
MAX_OTHER_THREADS = 100

#: The close codes with which the reference platform refuses a socket (docs/protocol.md,
#: "Close codes"): 1008 (too many sockets; a slow consumer too, whose reason is no error
#: code) and 1013 (try again later: Redis out of reach at admission).
REFUSAL_CLOSES = frozenset({1008, 1013})
#: The close with which the reference platform refuses a socket's token (docs/protocol.md,
#: "Authentication"), and the code a chat counts it under (``errors.server.unauthorized``).
TOKEN_REFUSED_CLOSE, UNAUTHORIZED = 4401, "unauthorized"
#: What a token refusal asks of the user, added to its sample.
TOKEN_REFUSED_FIX = (
    "the target refused the token: check the secret or key it verifies tokens with "
    "(--jwt-secret, --jwt-secret-file, [target] jwt_private_key_file) and [target] issuer "
    "and audience"
)


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
    """A thread's events arrived out of order on one socket: ``expected`` then ``got``; or
    an event came with no integer seq (``malformed``: its seq as JSON, ``got`` None), which
    no order can be checked on."""

    thread_id: str
    expected: int | None
    got: int | None
    malformed: str | None = None

    def describe(self) -> str:
        """One line for an error sample."""
        if self.malformed is None:
            seen = f"thread {self.thread_id}: expected seq {self.expected}, got {self.got}"
            if self.expected is None or self.got is None:
                return seen
            if self.got > self.expected:
                return f"{seen} (a gap: {self.got - self.expected} missing)"
            return (
                f"{seen} (a duplicate, or an event that came late: seq {self.got} was due before)"
            )
        return (
            f"thread {self.thread_id}: an event whose seq is {self.malformed}, not an integer"
            + ("" if self.expected is None else f" (expected {self.expected})")
        )


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
    1008 for a slow consumer, whose reason is no code, is no refusal. A 4401 refuses the
    socket's token: :data:`UNAUTHORIZED`.
    """
    if close_code == TOKEN_REFUSED_CLOSE:
        return UNAUTHORIZED
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


_T = TypeVar("_T")

#: The fields of an event a kept foreign frame holds when the frame is cut.
_KEPT_FIELDS = ("type", "thread_id", "run_id", "seq")


def kept_frame(frame: Mapping[str, Any]) -> Mapping[str, Any]:
    """What a tracker keeps of a foreign event: ``frame`` itself when its JSON has at most
    :data:`MAX_FOREIGN_CHARS` characters; else a new frame of its type, thread, run and seq
    (strings cut to ``MAX_ID_CHARS``, a seq that is not a number as its cut JSON) and
    ``"cut"``, a printable prefix of its JSON, so that its thread is still judged and its
    sample still shown, whatever the frame's size."""
    text = json.dumps(frame, ensure_ascii=True, default=str)
    if len(text) <= MAX_FOREIGN_CHARS:
        return frame
    kept: dict[str, Any] = {}
    for key in _KEPT_FIELDS:
        if key in frame:
            value = frame[key]
            if isinstance(value, str):
                kept[key] = cut_text(value)
            elif value is None or isinstance(value, bool | int | float):
                kept[key] = value
            else:
                kept[key] = cut_text(json.dumps(value, ensure_ascii=True, default=str))
    kept["cut"] = cut_text(text, MAX_FOREIGN_CHARS // 2)
    return kept


def keep_newest(items: list[_T], item: _T, limit: int) -> int:
    """Append ``item`` to ``items``, keeping the newest ``limit``: how many were dropped from
    the front (0 or 1). The bounded trackers' lists (this module's, the echo adapter's)."""
    items.append(item)
    if len(items) > limit:
        del items[0]
        return 1
    return 0


class RunTracker:
    """Match frames to the messages this socket sent; check per-thread seq continuity.

    Its memory stays flat however long the socket lives (see the module's docstring)."""

    def __init__(self) -> None:
        #: Messages whose outcome is not known: sent and not finished, or given up on.
        self._by_client_id: dict[str, RunObservation] = {}
        #: The runs of those messages, once acknowledged.
        self._by_run_id: dict[str, RunObservation] = {}
        #: Messages sent whose ``ack`` or ``error`` has not come (yet), oldest first.
        self._unanswered: dict[str, RunObservation] = {}
        #: Messages given up on that are still followed, oldest first (at most
        #: :data:`MAX_EXPIRED`).
        self._expired: dict[str, RunObservation] = {}
        #: Runs no longer followed whose late frames are still this socket's, oldest first
        #: (at most :data:`MAX_PAST_RUNS`).
        self._past_runs: dict[str, None] = {}
        #: The threads this socket sent a message to or resumed: only their seqs are
        #: followed (in ``last_seq``), so a target naming new threads cannot grow it.
        self._threads: set[str] = set()
        #: Other threads whose seqs are followed too (at most :data:`MAX_OTHER_THREADS`),
        #: and the events of threads past them, not followed.
        self._others: set[str] = set()
        self.threads_unfollowed = 0
        self.last_seq: dict[str, int] = {}
        #: The newest :data:`MAX_GAPS` gaps, :data:`MAX_UNMATCHED` unmatched errors and
        #: :data:`MAX_FOREIGN` foreign events...
        self.gaps: list[SeqGap] = []
        self.unmatched_errors: list[ServerError] = []
        self.foreign_events: list[Mapping[str, Any]] = []
        #: ...how many older ones were dropped from each front, so that ``gaps_dropped +
        #: len(gaps)`` counts every gap (and so on)...
        self.gaps_dropped = 0
        self.unmatched_dropped = 0
        self.foreign_dropped = 0
        #: ...and all three, all told: it changes whenever a frame adds one, so the chat
        #: records each while it is still kept.
        self.findings = 0

    def __repr__(self) -> str:
        return (
            f"RunTracker(following={len(self._by_client_id)}, "
            f"gaps={self.gaps_dropped + len(self.gaps)}, "
            f"unmatched={self.unmatched_dropped + len(self.unmatched_errors)}, "
            f"foreign={self.foreign_dropped + len(self.foreign_events)})"
        )

    def sent(self, client_msg_id: str, thread_id: str, now: float) -> RunObservation:
        observation = RunObservation(client_msg_id=client_msg_id, thread_id=thread_id, sent_at=now)
        self._threads.add(thread_id)
        self._by_client_id[client_msg_id] = observation
        self._unanswered[client_msg_id] = observation
        return observation

    def resumed(self, thread_id: str, after_seq: int) -> None:
        """A ``resume`` was sent: the next event of the thread must be ``after_seq + 1``."""
        self._threads.add(thread_id)
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
                if observation.run_id is not None:  # a second ack: its first run is past
                    self._past(observation.run_id, observation)
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
            if observation is not None and observation.status is RunStatus.TIMED_OUT:
                self._forget(observation)  # given up on, and now answered: nothing follows
            error = ServerError(
                code=code,
                message=str(frame.get("message", "")),
                client_msg_id=None if client_msg_id is None else str(client_msg_id),
                thread_id=None if thread_id is None else str(thread_id),
            )
            self.unmatched_dropped += keep_newest(self.unmatched_errors, error, MAX_UNMATCHED)
            self.findings += 1
            return None
        observation.status = RunStatus.REJECTED
        observation.error_code = code
        observation.completed_at = now
        self._forget(observation)
        return observation

    def _event(self, frame: Mapping[str, Any], kind: str, now: float) -> RunObservation | None:
        thread_id = str(frame.get("thread_id"))
        seq = json_int(frame.get("seq"))
        followed = self._followed(thread_id)
        if followed is not None:
            self._order(followed, frame, seq)
        run_id = str(frame.get("run_id"))
        observation = self._by_run_id.get(run_id)
        if observation is None:
            # A late frame of a run this socket no longer follows (a duplicate, an event
            # after its completion) is still its own: only its seq counts, above.
            if run_id not in self._past_runs:
                kept = kept_frame(frame)
                self.foreign_dropped += keep_newest(self.foreign_events, kept, MAX_FOREIGN)
                self.findings += 1
            return None
        return self._progress(observation, frame, kind, seq, now)

    def _followed(self, thread_id: str) -> str | None:
        """The key ``thread_id``'s seqs are followed under, or None when they are not: every
        thread this socket sent to or resumed, and the first :data:`MAX_OTHER_THREADS` others
        it hears of (another socket's thread of the same user, say), their ids cut to
        ``MAX_ID_CHARS``, so a target naming a new thread per event cannot grow the map."""
        if thread_id in self._threads:
            return thread_id
        key = cut_text(thread_id)
        if key in self._others:
            return key
        if len(self._others) < MAX_OTHER_THREADS:
            self._others.add(key)
            return key
        self.threads_unfollowed += 1
        return None

    def _order(self, thread_id: str, frame: Mapping[str, Any], seq: int | None) -> None:
        """Check the seq of an event of one of this socket's threads."""
        last = self.last_seq.get(thread_id)
        if seq is None:
            # Missing, a float, a string, true: an event no order can be checked on is
            # an ordering finding, not an event that passes.
            malformed = shown_json(frame.get("seq"))
            gap = SeqGap(thread_id, None if last is None else last + 1, None, malformed)
            self.gaps_dropped += keep_newest(self.gaps, gap, MAX_GAPS)
            self.findings += 1
        else:
            if last is not None and seq != last + 1:
                gap = SeqGap(thread_id=thread_id, expected=last + 1, got=seq)
                self.gaps_dropped += keep_newest(self.gaps, gap, MAX_GAPS)
                self.findings += 1
            self.last_seq[thread_id] = max(seq, last or 0)

    def _progress(
        self,
        observation: RunObservation,
        frame: Mapping[str, Any],
        kind: str,
        seq: int | None,
        now: float,
    ) -> RunObservation | None:
        """An event of a run this socket follows."""
        observation.events.append(kind)
        ts = frame.get("ts")
        if isinstance(ts, int | float):
            observation.server_ts.setdefault(kind, float(ts))
        if seq is not None:
            observation.seqs.append(seq)
        if observation.first_event_at is None:
            observation.first_event_at = now
        if kind == "agent_started":
            # A context that is not an object, or sizes that are not integers, are not
            # taken: the run's other events still count.
            context = frame.get("context")
            if isinstance(context, Mapping):
                observation.context_chars = json_int(context.get("chars"))
                observation.context_tokens = json_int(context.get("tokens"))
        if kind == "agent_completed":
            observation.completed_at = now
            observation.charge = frame.get("charge")
            status = str(frame.get("status", "completed"))
            observation.status = _END_STATES.get(status, RunStatus.FAILED)
            self._forget(observation)
            return observation
        return None

    def expire(self, observation: RunObservation, now: float) -> None:
        """Give up waiting for ``observation``: its outcome is unknown. A late answer still
        reaches it while it is among the newest :data:`MAX_EXPIRED` given up on."""
        if not observation.done:
            observation.status = RunStatus.TIMED_OUT
            observation.completed_at = None
            if self._by_client_id.get(observation.client_msg_id) is observation:
                self._expired[observation.client_msg_id] = observation
                if len(self._expired) > MAX_EXPIRED:
                    self._forget(next(iter(self._expired.values())))

    def _forget(self, observation: RunObservation) -> None:
        """Stop following ``observation``, whose outcome is known (or long given up on); its
        run, if acknowledged, joins the past runs whose late frames are still recognised."""
        client_msg_id = observation.client_msg_id
        for following in (self._by_client_id, self._unanswered, self._expired):
            if following.get(client_msg_id) is observation:
                del following[client_msg_id]
        if observation.run_id is not None:
            self._past(observation.run_id, observation)

    def _past(self, run_id: str, observation: RunObservation) -> None:
        """``observation`` no longer follows ``run_id``: remember it among the past runs."""
        if self._by_run_id.get(run_id) is observation:
            del self._by_run_id[run_id]
        self._past_runs[run_id] = None
        if len(self._past_runs) > MAX_PAST_RUNS:
            del self._past_runs[next(iter(self._past_runs))]

    @property
    def pending(self) -> list[RunObservation]:
        return [o for o in self._by_client_id.values() if not o.done]
