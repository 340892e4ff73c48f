"""Events whose ``PUBLISH`` failed because Redis could not be reached, kept to publish again.

Every event is stored before it is published, so a lost publish loses delivery, not data: a
socket gap-fills from storage when a later event of the thread shows it a gap, or when its
hub's pub/sub connection comes back. Neither happens when the lost event was the thread's
last (``agent_completed``, typically) and Redis paused rather than dropped its connections
(for less than the hub takes to notice a silent pub/sub connection, see
:mod:`squall.target.hub`): the socket would wait for it until something else happened on
the thread. The hub keeps
such events here and publishes them again once Redis answers (:meth:`Hub.publish`).

Only the newest event of each thread is kept: a socket that gets it gap-fills whatever it
missed before it from storage, and drops it if it already has it (``ordering.Sequencer``),
so publishing it again never sends anything twice. The backlog is bounded in threads
(:data:`MAX_THREADS`, the oldest goes first) and in age (:data:`MAX_AGE_S`): an event older
than that is dropped, with one warning line per batch, and its sockets get it with the
thread's next event or a ``resume``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from squall.target.ids import ThreadID, UserID
from squall.target.protocol import event_seq

#: Threads whose newest failed event is kept at most; a newer thread evicts the oldest.
MAX_THREADS = 1000
#: Seconds after its first failed publish from which an event is no longer published again.
MAX_AGE_S = 300.0


@dataclass(frozen=True)
class Pending:
    """One event to publish again to ``user``'s channel, first failed at ``failed_at``."""

    user: UserID
    event: dict[str, Any]
    seq: int
    failed_at: float


class Backlog:
    """The newest unpublished event per thread, oldest thread first (pure; no I/O)."""

    def __init__(self, max_threads: int = MAX_THREADS, max_age_s: float = MAX_AGE_S) -> None:
        if max_threads < 1:
            raise ValueError(f"max_threads must be at least 1, got {max_threads}")
        self._max_threads = max_threads
        self._max_age_s = max_age_s
        # Insertion-ordered: the first key is the thread whose event failed longest ago.
        self._pending: dict[ThreadID, Pending] = {}
        #: Events dropped for the bounds, since the last :meth:`take_dropped`.
        self._dropped = 0

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, user: UserID, event: dict[str, Any], now: float) -> None:
        """Keep ``event`` unless its thread already has a newer one waiting (or it is no
        thread event: nothing would gap-fill it)."""
        key = event_seq(event)
        if key is None:
            return
        thread, seq = key
        held = self._pending.get(thread)
        if held is not None:
            if held.seq >= seq:
                return
            del self._pending[thread]  # re-inserted last, as the newest failure
        elif len(self._pending) >= self._max_threads:
            del self._pending[next(iter(self._pending))]
            self._dropped += 1
        self._pending[thread] = Pending(user, event, seq, now)

    def published(self, event: dict[str, Any]) -> None:
        """``event`` reached Redis: an older event of its thread waiting here is not needed
        (the thread's sockets gap-fill it from ``event``)."""
        if not self._pending:  # every publish comes here: nothing held, nothing to parse
            return
        key = event_seq(event)
        if key is None:
            return
        thread, seq = key
        held = self._pending.get(thread)
        if held is not None and held.seq <= seq:
            del self._pending[thread]

    def next(self, now: float) -> Pending | None:
        """The event to publish next (oldest first), after dropping those past the age bound;
        it stays here until :meth:`published` (or a newer :meth:`add`) removes it."""
        while self._pending:
            thread, pending = next(iter(self._pending.items()))
            if now - pending.failed_at <= self._max_age_s:
                return pending
            del self._pending[thread]
            self._dropped += 1
        return None

    def take_dropped(self) -> int:
        """Events dropped for the bounds since the last call (for one warning line)."""
        dropped, self._dropped = self._dropped, 0
        return dropped

    def discard(self, pending: Pending) -> None:
        """Forget ``pending`` (it cannot be published), unless a newer event replaced it."""
        thread = ThreadID(str(pending.event["thread_id"]))
        if self._pending.get(thread) is pending:
            del self._pending[thread]
