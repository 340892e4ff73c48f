"""The adapter interface: what squall must know to chat with a target over WebSocket.

A target protocol is an adapter. It says how to authenticate the upgrade, how
to encode a chat message, and — through a pure tracker fed every server frame —
how to recognise the acknowledgement, the progress events, the completion and
the errors of each message, and where the per-thread sequence numbers are.
Its :class:`Capabilities` say which notions the protocol has at all, so that a
check the protocol cannot support is reported as *not applicable* instead of
silently passing.

Everything here is pure: adapters take data and return data. The I/O shell that
drives them over a socket is :class:`squall.adapters.chat.Chat`.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NewType, Protocol

from squall.adapters.tracker import RunObservation, SeqGap, ServerError

if TYPE_CHECKING:
    from squall.engine.identity import Identity

#: A conversation thread, named by the client.
ThreadID = NewType("ThreadID", str)


@dataclass(frozen=True)
class Capabilities:
    """Which notions a protocol has; a missing one makes its checks not applicable."""

    #: The upgrade carries the user's credentials (per-user identities mean something).
    authentication: bool
    #: The server acknowledges each message before working on it (``ack_time``).
    acknowledgements: bool
    #: The server streams progress events before completion (``first_event_time``,
    #: the ``delivery`` rate).
    progress_events: bool
    #: Events carry per-thread sequence numbers (``seq_gaps``, the ``violations`` gauge).
    ordering: bool
    #: Users are isolated from each other (events of another user's thread are leaks).
    isolation: bool

    def not_applicable(self, adapter: str) -> list[str]:
        """One note per check this protocol cannot support, for the scenario's notes."""
        notes = []
        if not self.ordering:
            notes.append(
                f"ordering: not applicable, adapter {adapter!r} has no per-thread sequence "
                "numbers (no seq_gaps / violations recorded)"
            )
        if not self.isolation:
            notes.append(
                f"isolation: not applicable, adapter {adapter!r} has no per-user isolation"
            )
        if not self.progress_events:
            notes.append(f"delivery: not applicable, adapter {adapter!r} sends no progress events")
        if not self.acknowledgements:
            notes.append(f"ack_time: not applicable, adapter {adapter!r} sends no acknowledgements")
        return notes


#: Counters the chat records for each check, when the protocol supports it.
SEQ_GAPS = "seq_gaps"
ISOLATION_LEAKS = "isolation_leaks"


def violations(capabilities: Capabilities, counts: Mapping[str, int]) -> int | None:
    """Correctness violations seen by the chats: sequence gaps plus isolation leaks.

    ``counts`` are the run's counters. ``None`` when no check ran — the
    protocol has neither notion, or nothing recorded them (a behaviour that
    did not chat) — so a ``violations`` threshold is not applicable rather
    than passed.
    """
    names = [SEQ_GAPS] * capabilities.ordering + [ISOLATION_LEAKS] * capabilities.isolation
    ran = [name for name in names if name in counts]
    if not ran:
        return None
    return sum(counts[name] for name in ran)


class Tracker(Protocol):
    """Pure: matches server frames to the messages one socket sent.

    A tracker may keep only the newest of its ``foreign_events``; it then counts the ones
    it dropped from their front in an ``int`` attribute ``foreign_dropped`` (optional), so
    the chat's counts of them still include every one. A tracker whose protocol has
    errors that reject no message it waits for (an error of the socket's own, the late
    answer of a message given up on) lists them in ``unmatched_errors``, a
    ``list[ServerError]`` (optional), each counted in ``errors.server.<code>``. It may
    bound ``gaps`` and ``unmatched_errors`` the same way (``gaps_dropped``,
    ``unmatched_dropped``). A tracker that bounds any of them also counts, in an ``int``
    ``findings``, every gap, unmatched error and foreign event it found: the chat then
    records each as the frame that brought it is fed, before it can be dropped. A foreign
    event dropped before the chat judged it (a tracker without ``findings``) counts as an
    isolation leak, since the chat cannot tell it was none.
    """

    @property
    def gaps(self) -> list[SeqGap]: ...

    @property
    def foreign_events(self) -> list[Mapping[str, Any]]: ...

    def sent(self, client_msg_id: str, thread_id: str, now: float) -> RunObservation:
        """A message was sent at ``now``; return the observation that will follow it."""
        ...

    def feed(self, frame: Mapping[str, Any], now: float) -> RunObservation | None:
        """Consume one server frame; return the observation it finished, if any."""
        ...

    def expire(self, observation: RunObservation, now: float) -> None:
        """Give up waiting for ``observation``."""
        ...


class Adapter(abc.ABC):
    """A target protocol. Subclasses set ``name`` and ``capabilities``."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    @abc.abstractmethod
    def headers(self, identity: Identity) -> dict[str, str]:
        """The upgrade request's headers that authenticate ``identity`` (may be empty)."""

    @abc.abstractmethod
    def message(self, thread_id: str, content: str, client_msg_id: str) -> dict[str, Any]:
        """The JSON frame that sends ``content`` to ``thread_id``."""

    @abc.abstractmethod
    def tracker(self) -> Tracker:
        """A fresh tracker for one socket."""

    @abc.abstractmethod
    def delivered(self, observation: RunObservation) -> bool:
        """Whether the whole expected event sequence of a run arrived (the ``delivery`` rate)."""

    def recognises(self, frame: Mapping[str, Any]) -> bool:
        """Whether ``frame`` is one this protocol's servers send. A message that times out
        while only frames it does not recognise arrived counts an ``errors.protocol``
        (a target speaking another protocol). By default every frame is recognised, so
        nothing is ever taken for a mismatch."""
        return True

    def refusal(
        self, close_code: int | None, reason: str, unread: Sequence[ServerError]
    ) -> str | None:
        """The error code with which the server refused a socket it closed (its close
        frame came first) with ``close_code`` and ``reason``, or None when that close
        refuses nothing. ``unread`` are the errors the tracker found among the frames the
        socket had not read yet at the close (its ``unmatched_errors`` from them). The chat
        counts a refusal in ``errors.server.<code>``, once, instead of ``errors.closed``.
        By default no close is a refusal."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
