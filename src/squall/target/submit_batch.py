"""Group commit of submits: per user, at most one billing statement in flight.

Every accepted message of a user debits the same account row. One statement per message
(``squall_submit``) spends most of its time on work done once per statement and keeps
the hot row's lock busy once per message; ``squall_submit_many`` accepts several
messages of one user in one statement. This module decides which messages go together;
the statements themselves are injected (``SendOne``, ``SendMany``), so the coordination is
tested with scripted senders and the platform passes the real ones.

How batches form, per user: a submit that finds nothing in flight for its user starts
the user's line task, which sends it at once (alone, through ``SendOne``, unless others
arrived in the same turn of the event loop). Submits that arrive while a statement is in
flight wait in the line; when it completes they go together in the next statement, at
most ``max_batch`` of them: ``SendMany`` for two or more, ``SendOne`` for one. Each
caller gets exactly its own :class:`Outcome` (or its own exception).

A whole-statement failure of a batch (a duplicate id, the balance falling between the
batch's read and its debit, a deadlock) writes nothing of it; its messages are then sent
one by one with ``SendOne``, so one bad message cannot fail the others and each caller
gets what a lone submit would have got. A lost connection is different: the batch may
have committed before it was lost, so nothing is resent here; every caller gets the error
and its submit reads its own run back before trying again (``runtime.submit``).

Cancellation: a caller cancelled while its message waits in the line is removed from it
(nothing is sent, nothing charged). Once its statement is sent, the outcome stands: the
statement runs to completion in the line's own task, is counted and followed by the
``after`` hook; only the answer is not delivered. So no message is lost or charged twice
whatever the callers do.

No backpressure here: a line holds one entry per waiting caller, and callers are bounded
by the edge (one ``user_message`` in flight per socket). A batch holds at most
``max_batch`` entries.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from squall.target.db import connection_lost

__all__ = [
    "MAX_BATCH",
    "OK",
    "Element",
    "Outcome",
    "SendMany",
    "SendOne",
    "SubmitBatcher",
]

log = logging.getLogger(__name__)

#: Outcome status of an accepted message; refusals are ``not_found``, ``queue_full`` and
#: ``insufficient_credits``.
OK = "ok"
#: Messages per statement at most: bounds the memory of one batch and its statement.
MAX_BATCH = 64


@dataclass(frozen=True, slots=True)
class Element:
    """One message to accept: its thread, the ids chosen for it, content, client id."""

    thread: str
    message: str
    run: str
    content: str
    client_msg_id: str


class Outcome(NamedTuple):
    """``status`` ``ok`` with the balance left after the debit, or a refusal with the
    number its message reports (queued runs, or the balance; 0 for ``not_found``)."""

    status: str
    number: int


SendOne = Callable[[str, Element], Awaitable[Outcome]]
SendMany = Callable[[str, Sequence[Element]], Awaitable[list[Outcome]]]
#: Called after each statement (or fallback) with the number of messages it accepted.
After = Callable[[int], Awaitable[None]]


async def _nothing(accepted: int) -> None:
    return None


@dataclass(slots=True, eq=False)
class _Waiting:
    element: Element
    future: asyncio.Future[Outcome]


class _Line:
    """One user's waiting submits and the task sending their statements, if any."""

    __slots__ = ("driver", "waiting")

    def __init__(self) -> None:
        self.waiting: deque[_Waiting] = deque()
        self.driver: asyncio.Task[None] | None = None

    def take(self, limit: int) -> list[_Waiting]:
        """The next batch: up to ``limit`` waiting submits, oldest first."""
        return [self.waiting.popleft() for _ in range(min(limit, len(self.waiting)))]


class SubmitBatcher:
    """Per user, one billing statement in flight; the submits that wait go together next.

    ``counts`` receives ``submit_statements_total`` (statements sent, batches and lone
    submits alike, fallbacks included), ``submit_batches_total`` (``SendMany``
    statements), ``submit_batched_total`` (messages sent in them) and
    ``submit_batch_fallbacks_total`` (batches retried one by one).
    """

    def __init__(
        self,
        send_one: SendOne,
        send_many: SendMany,
        *,
        max_batch: int = MAX_BATCH,
        after: After | None = None,
        counts: Counter[str] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch={max_batch}: expected at least 1")
        self._send_one = send_one
        self._send_many = send_many
        self._after = _nothing if after is None else after
        self.max_batch = max_batch
        self.counts: Counter[str] = Counter() if counts is None else counts
        self._lines: dict[str, _Line] = {}

    def __repr__(self) -> str:
        waiting = sum(len(line.waiting) for line in self._lines.values())
        return (
            f"SubmitBatcher(users={len(self._lines)}, waiting={waiting}, "
            f"max_batch={self.max_batch})"
        )

    async def submit(self, user: str, element: Element) -> Outcome:
        """Accept ``element`` for ``user`` in the user's next statement; its outcome.

        Raises what the statement raised for this message (after the one-by-one retry of
        a failed batch). Cancelled before its statement is sent: removed, nothing sent.
        """
        line = self._lines.get(user)
        if line is None:
            line = self._lines[user] = _Line()
        entry = _Waiting(element, asyncio.get_running_loop().create_future())
        line.waiting.append(entry)
        if line.driver is None:
            line.driver = asyncio.create_task(self._drive(user, line), name=f"submit-{user}")
        try:
            return await entry.future
        except asyncio.CancelledError:
            if entry in line.waiting:  # not sent yet: leave the line
                line.waiting.remove(entry)
            raise

    async def drain(self) -> None:
        """Wait until every waiting submit has been sent and answered (for shutdown)."""
        while self._lines:
            drivers = [line.driver for line in self._lines.values() if line.driver is not None]
            if not drivers:
                return
            await asyncio.gather(*drivers, return_exceptions=True)

    async def _drive(self, user: str, line: _Line) -> None:
        """Send the user's statements one after another until nobody waits."""
        batch: list[_Waiting] = []
        try:
            while line.waiting:
                batch = line.take(self.max_batch)
                await self._send(user, batch)
                batch = []
        finally:
            # Only an abnormal end (the task cancelled) leaves callers without an answer.
            for entry in (*batch, *line.waiting):
                if not entry.future.done():
                    entry.future.cancel()
            line.waiting.clear()
            line.driver = None
            if self._lines.get(user) is line:
                del self._lines[user]

    async def _send(self, user: str, batch: list[_Waiting]) -> None:
        """One statement for ``batch`` (or one per message after a failed batch)."""
        if len(batch) == 1:
            accepted = await self._one(user, batch[0])
        else:
            self.counts["submit_statements_total"] += 1
            self.counts["submit_batches_total"] += 1
            self.counts["submit_batched_total"] += len(batch)
            try:
                outcomes = await self._send_many(user, [entry.element for entry in batch])
            except Exception as exc:
                accepted = 0
                if connection_lost(exc):  # it may have committed: the callers read back
                    for entry in batch:
                        _fail(entry.future, exc)
                else:
                    log.info("a batch of %d submits failed; sending them one by one", len(batch))
                    self.counts["submit_batch_fallbacks_total"] += 1
                    for entry in batch:
                        accepted += await self._one(user, entry)
            else:
                accepted = 0
                if len(outcomes) != len(batch):  # committed, so never resent: an error
                    error = RuntimeError(
                        f"a batch of {len(batch)} submits answered {len(outcomes)} outcomes"
                    )
                    for entry in batch:
                        _fail(entry.future, error)
                else:
                    for entry, outcome in zip(batch, outcomes, strict=True):
                        accepted += outcome.status == OK
                        _settle(entry.future, outcome)
        try:
            await self._after(accepted)
        except Exception:
            log.exception("the hook after a submit statement failed")

    async def _one(self, user: str, entry: _Waiting) -> int:
        """``SendOne`` for one message; settle its caller; 1 if it was accepted."""
        self.counts["submit_statements_total"] += 1
        try:
            outcome = await self._send_one(user, entry.element)
        except Exception as exc:
            _fail(entry.future, exc)
            return 0
        _settle(entry.future, outcome)
        return int(outcome.status == OK)


def _settle(future: asyncio.Future[Outcome], outcome: Outcome) -> None:
    if not future.done():  # a cancelled caller's outcome stands, unheard
        future.set_result(outcome)


def _fail(future: asyncio.Future[Outcome], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
