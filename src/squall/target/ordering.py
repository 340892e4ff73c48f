"""Per-socket, per-thread delivery order: no event twice, none skipped.

Live events reach a socket through pub/sub and replayed ones through
``runtime.replay``; both carry the thread's ``seq``. A :class:`Sequencer` holds,
for each thread a socket has seen, the last seq it delivered and decides what
to do with the next event. Pure: the WebSocket layer performs the I/O it asks for.

While a fill (a ``resume`` or a gap repair) runs for a thread, live events of
that thread are *held back*: only their highest seq is remembered, and the fill
keeps replaying until it has delivered at least that far. Because the runtime
publishes an event only after its row is committed, everything the socket has
seen live is already replayable.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from squall.target.ids import ThreadID


class Step(enum.Enum):
    """What to do with one live event."""

    DELIVER = "deliver"
    #: Already delivered (seq <= last): a duplicate, drop it.
    DROP = "drop"
    #: A fill runs for this thread; it will deliver this event.
    HOLD = "hold"
    #: seq > last + 1: start a gap fill replaying from ``last``.
    FILL = "fill"


@dataclass
class Cursor:
    """The delivery state of one thread on one socket."""

    last: int
    #: First seq delivered on this socket: [first, last] went out contiguously.
    first: int
    filling: bool = False
    #: Highest seq seen live while filling.
    seen_max: int = 0
    #: Bumped by every fill; a fill whose token is stale stops quietly.
    token: int = 0
    #: Events may have been missed while the fill ran (pub/sub was down): read once more.
    recheck: bool = False


class Sequencer:
    """Delivery decisions for one socket; every method is synchronous and O(1) per event."""

    def __init__(self) -> None:
        self._cursors: dict[ThreadID, Cursor] = {}
        #: Runs acked to this socket on threads it has no cursor for yet (None: none).
        self._expected: dict[ThreadID, str] | None = None

    def threads(self) -> list[ThreadID]:
        """The threads this socket has delivered events of."""
        return list(self._cursors)

    def expect(self, thread: ThreadID, run: str) -> None:
        """This socket was acked ``run`` of ``thread`` before it saw any event of the thread.

        If pub/sub is down when the run's events are published, no live event ever comes to
        start delivery; :meth:`expected` lets a resync replay the run from its first event.
        """
        if thread in self._cursors:
            return
        if self._expected is None:
            self._expected = {}
        self._expected.setdefault(thread, run)

    def expected(self) -> list[tuple[ThreadID, str]]:
        """The (thread, first acked run) pairs of threads still without a cursor."""
        return list(self._expected.items()) if self._expected else []

    def expected_run(self, thread: ThreadID) -> str | None:
        """The run this socket was acked on ``thread`` before any event of the thread came."""
        return self._expected.get(thread) if self._expected else None

    def start_run_fill(self, thread: ThreadID, seq: int) -> int:
        """The first live event of an expected thread is not its run's start: pub/sub may
        have lost the beginning. Hold ``seq`` and begin a fill (the caller looks up where the
        run starts and replays from there, or from ``seq``); returns the fill's token."""
        token = self.start_fill(thread, seq - 1)
        self.on_live(thread, seq)  # held: the fill delivers it
        return token

    def _cursor_for(self, thread: ThreadID, last: int, first: int) -> Cursor:
        cursor = self._cursors[thread] = Cursor(last=last, first=first)
        if self._expected:
            self._expected.pop(thread, None)
        return cursor

    def resync(self, thread: ThreadID) -> bool:
        """Pub/sub was down, so live events of ``thread`` may have been missed. True when a
        gap fill should start; a fill already running (a gap fill or a ``resume``, whose
        ``resume_done`` must still come) instead reads once more before it ends."""
        cursor = self._cursors.get(thread)
        if cursor is None:
            return False
        if cursor.filling:
            cursor.recheck = True
            return False
        return True

    def last(self, thread: ThreadID) -> int | None:
        cursor = self._cursors.get(thread)
        return None if cursor is None else cursor.last

    def on_live(self, thread: ThreadID, seq: int) -> Step:
        cursor = self._cursors.get(thread)
        if cursor is None:
            # First sight of this thread on this socket: delivery starts here.
            self._cursor_for(thread, seq, seq)
            return Step.DELIVER
        if cursor.filling:
            cursor.seen_max = max(cursor.seen_max, seq)
            return Step.HOLD
        if seq <= cursor.last:
            return Step.DROP
        if seq == cursor.last + 1:
            cursor.last = seq
            return Step.DELIVER
        cursor.filling = True
        cursor.seen_max = seq
        return Step.FILL

    def start_fill(self, thread: ThreadID, after_seq: int | None) -> int:
        """Begin a fill: a gap repair (``after_seq=None``) or a ``resume``. Returns its token.

        A resume from inside the range this socket already delivered continues
        after what it delivered (nothing twice). A resume from before that range
        (a fresh socket that saw live events before the client's ``resume``)
        restarts the thread's stream at ``after_seq + 1``, in order: the events
        delivered live in between are then sent again.
        """
        cursor = self._cursors.get(thread)
        if cursor is None:
            start = after_seq or 0
            cursor = self._cursor_for(thread, start, start + 1)
        elif after_seq is not None:
            if after_seq < cursor.first - 1:
                cursor.last = after_seq
                cursor.first = after_seq + 1
            else:
                cursor.last = max(cursor.last, after_seq)
        if not cursor.filling:
            cursor.seen_max = cursor.last
        cursor.filling = True
        cursor.token += 1
        return cursor.token

    def accept_page(self, thread: ThreadID, token: int, seqs: Sequence[int]) -> list[int] | None:
        """Indices of ``seqs`` (ascending replayed events) to deliver; ``None`` if superseded."""
        cursor = self._cursors.get(thread)
        if cursor is None or cursor.token != token:
            return None
        accepted = []
        for index, seq in enumerate(seqs):
            if seq > cursor.last:
                cursor.last = seq
                accepted.append(index)
        return accepted

    def finish_fill(self, thread: ThreadID, token: int) -> bool:
        """End the fill if it has caught up with every event seen live; else replay more."""
        cursor = self._cursors.get(thread)
        if cursor is None or cursor.token != token:
            return True
        if cursor.recheck:
            cursor.recheck = False
            return False
        if cursor.last >= cursor.seen_max:
            cursor.filling = False
            return True
        return False

    def abort_fill(self, thread: ThreadID, token: int) -> None:
        """Give up a fill (the thread is not the user's): forget the thread."""
        cursor = self._cursors.get(thread)
        if cursor is not None and cursor.token == token:
            del self._cursors[thread]

    def __repr__(self) -> str:
        filling = sum(1 for c in self._cursors.values() if c.filling)
        return f"<Sequencer threads={len(self._cursors)} filling={filling}>"
