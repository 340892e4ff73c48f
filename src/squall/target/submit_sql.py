"""The two billing statements that accept messages, and how their answers read.

``squall_submit`` (migration 3) accepts one message; ``squall_submit_many`` (migration 4)
accepts several of one user in one statement with exactly the outcomes of calling the
former for each in order (see ``docs/runtime.md``, "Billing"). Both answer with
:class:`~squall.target.submit_batch.Outcome`: a refusal is an outcome, not an error, so
the batcher can hand each caller its own; anything else raised is a real error.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from squall.target.db import Pool
from squall.target.submit_batch import OK, After, Element, Outcome, SubmitBatcher

__all__ = [
    "SUBMIT_MANY_SQL",
    "SUBMIT_SQL",
    "Terms",
    "billing_batcher",
    "submit_many",
    "submit_one",
]

#: The one statement that accepts a message: thread, queue bound, message, run, debit and
#: ledger row (``squall_submit``, migration 3). Arguments: thread, user, message id, run
#: id, content, client_msg_id, run cost, initial credits, max queued runs per thread.
SUBMIT_SQL = "SELECT squall_submit($1, $2, $3, $4, $5, $6, $7, $8, $9)"
#: Several messages of one user (``squall_submit_many``, migration 4). Arguments: user,
#: then the threads, message ids, run ids, contents and client_msg_ids as arrays, one
#: entry per message, then run cost, initial credits, max queued runs per thread.
SUBMIT_MANY_SQL = (
    "SELECT status, number FROM squall_submit_many($1, $2, $3, $4, $5, $6, $7, $8, $9)"
)


@dataclass(frozen=True, slots=True)
class Terms:
    """What every submit of a worker is charged and bounded by (from its settings)."""

    cost: int
    initial: int
    max_queued: int


async def submit_one(pool: Pool, terms: Terms, user: str, element: Element) -> Outcome:
    """``squall_submit`` for one message: its outcome; a refusal's number is its HINT."""
    try:
        left = await pool.fetchval(
            SUBMIT_SQL,
            element.thread,
            user,
            element.message,
            element.run,
            element.content,
            element.client_msg_id,
            terms.cost,
            terms.initial,
            terms.max_queued,
        )
    except asyncpg.RaiseError as exc:
        if exc.message != "squall_submit":
            raise
        return Outcome(str(exc.detail), int(exc.hint or 0))
    return Outcome(OK, int(left))


async def submit_many(
    pool: Pool, terms: Terms, user: str, elements: Sequence[Element]
) -> list[Outcome]:
    """``squall_submit_many`` for several messages of ``user``: their outcomes, in order.

    Raises whatever the statement raises (a duplicate id, or ``squall_submit_many`` when
    the balance fell between its read and the debit): nothing of the batch is written then.
    """
    rows = await pool.fetch(
        SUBMIT_MANY_SQL,
        user,
        [e.thread for e in elements],
        [e.message for e in elements],
        [e.run for e in elements],
        [e.content for e in elements],
        [e.client_msg_id for e in elements],
        terms.cost,
        terms.initial,
        terms.max_queued,
    )
    return [Outcome(str(r["status"]), int(r["number"])) for r in rows]


def billing_batcher(
    pool: Pool, terms: Terms, *, after: After | None = None, counts: Counter[str] | None = None
) -> SubmitBatcher:
    """The platform's group commit: a :class:`SubmitBatcher` sending these two statements
    on ``pool`` with ``terms`` (``after`` and ``counts`` as the batcher takes them)."""

    async def send_one(user: str, element: Element) -> Outcome:
        return await submit_one(pool, terms, user, element)

    async def send_many(user: str, elements: Sequence[Element]) -> list[Outcome]:
        return await submit_many(pool, terms, user, elements)

    return SubmitBatcher(send_one, send_many, after=after, counts=counts)
