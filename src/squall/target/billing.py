"""Credits: accounts, the per-run ledger, grants and refunds.

The debit is one atomic conditional ``UPDATE ... WHERE balance >= cost``: PostgreSQL
re-checks the condition on the latest row version under the row lock, so concurrent
submits can neither overdraw nor lose an update, whatever the interleaving. The ledger
row's primary key is the run id, so a run is charged at most once. Every function takes
a connection so callers compose them into their own transaction.

Invariant: ``balance = initial + granted - sum(amount of non-refunded ledger rows)``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from squall.target.db import Connection
from squall.target.errors import InsufficientCredits
from squall.target.ids import RunID, UserID
from squall.target.protocol import MAX_BIGINT

#: Pause between the read and the write of the deliberately naive debit, so concurrent
#: submits interleave there and the lost update shows.
NAIVE_YIELD_S = 0.002


async def ensure_account(conn: Connection, user: UserID, initial: int) -> None:
    """Create ``user``'s account with ``initial`` credits unless it exists."""
    # ``$2::bigint``: the balance column is a domain over bigint (``squall_credits``), so an
    # untyped parameter used for both columns would be ambiguous.
    await conn.execute(
        "INSERT INTO accounts (user_id, balance, initial) VALUES ($1, $2::bigint, $2) "
        "ON CONFLICT (user_id) DO NOTHING",
        user,
        initial,
    )


async def charge(
    conn: Connection, user: UserID, run: RunID, cost: int, *, naive: bool = False
) -> None:
    """Debit ``cost`` for ``run`` and write its ledger row; call inside a transaction.

    ``naive`` is the deliberate ``naive_billing`` defect: read, yield, write the stale
    result back without a condition (a lost update under concurrency).
    """
    if naive:
        balance = await conn.fetchval("SELECT balance FROM accounts WHERE user_id = $1", user)
        if balance is None or balance < cost:
            raise insufficient(user, balance or 0, cost)
        await asyncio.sleep(NAIVE_YIELD_S)
        await conn.execute(
            "UPDATE accounts SET balance = $2 WHERE user_id = $1", user, balance - cost
        )
    else:
        left = await conn.fetchval(
            "UPDATE accounts SET balance = balance - $2 WHERE user_id = $1 AND balance >= $2 "
            "RETURNING balance",
            user,
            cost,
        )
        if left is None:
            balance = await conn.fetchval("SELECT balance FROM accounts WHERE user_id = $1", user)
            raise insufficient(user, balance or 0, cost)
    await conn.execute(
        "INSERT INTO ledger (run_id, user_id, amount) VALUES ($1, $2, $3)", run, user, cost
    )


def insufficient(user: UserID, balance: int, cost: int) -> InsufficientCredits:
    return InsufficientCredits(
        f"user {user!r} has {balance} credits but a run costs {cost}; "
        "add credits (POST /v1/accounts/{user_id}/credits) and retry"
    )


async def refund(conn: Connection, run: RunID) -> int:
    """Mark ``run``'s ledger row refunded and restore the balance; return the credits returned.

    Idempotent: a row already refunded returns 0. Call inside a transaction.
    """
    row = await conn.fetchrow(
        "UPDATE ledger SET refunded = true, refunded_at = now() "
        "WHERE run_id = $1 AND NOT refunded RETURNING user_id, amount",
        run,
    )
    if row is None:
        return 0
    await conn.execute(
        "UPDATE accounts SET balance = balance + $2 WHERE user_id = $1",
        row["user_id"],
        row["amount"],
    )
    return int(row["amount"])


class BalanceOverflow(Exception):
    """A grant would take a balance, with the charges of runs not ended given back, past
    :data:`~squall.target.protocol.MAX_BIGINT`."""


async def grant(conn: Connection, user: UserID, amount: int, granted_by: UserID) -> None:
    """Add ``amount`` credits to ``user`` (the account must exist); call inside a transaction.

    :class:`BalanceOverflow` when the balance, plus the charges of the user's runs not
    ended (each may still be refunded), would pass the largest bigint (``MAX_BIGINT``):
    granted, such a refund overflowed later, failing the recovery of that run.
    """
    await conn.execute(
        "INSERT INTO credit_grants (user_id, amount, granted_by) VALUES ($1, $2, $3)",
        user,
        amount,
        granted_by,
    )
    granted = await conn.fetchval(
        "UPDATE accounts SET balance = balance + $2 WHERE user_id = $1 "
        "AND balance::numeric + $2 + (SELECT COALESCE(sum(l.amount), 0) FROM ledger l "
        "JOIN runs r ON r.id = l.run_id WHERE l.user_id = $1 AND NOT l.refunded "
        "AND r.status IN ('queued', 'running')) <= $3 RETURNING 1",
        user,
        amount,
        MAX_BIGINT,
    )
    if granted is None:
        raise BalanceOverflow(user)


async def account(conn: Connection, user: UserID) -> dict[str, Any]:
    """The account summary served by ``GET /v1/accounts/me``."""
    row = await conn.fetchrow(
        """
        SELECT a.user_id, a.balance, a.initial,
            (SELECT count(*) FROM ledger l WHERE l.user_id = a.user_id AND NOT l.refunded)
                AS runs_charged,
            (SELECT count(*) FROM ledger l WHERE l.user_id = a.user_id AND l.refunded)
                AS runs_refunded,
            (SELECT coalesce(sum(amount), 0) FROM ledger l
                WHERE l.user_id = a.user_id AND NOT l.refunded) AS credits_spent,
            (SELECT coalesce(sum(amount), 0) FROM credit_grants g WHERE g.user_id = a.user_id)
                AS credits_granted
        FROM accounts a WHERE a.user_id = $1
        """,
        user,
    )
    if row is None:
        raise LookupError(f"no account for user {user!r}; call ensure_account first")
    return {
        "user_id": row["user_id"],
        "balance": int(row["balance"]),
        "initial_credits": int(row["initial"]),
        "credits_granted": int(row["credits_granted"]),
        "credits_spent": int(row["credits_spent"]),
        "runs_charged": int(row["runs_charged"]),
        "runs_refunded": int(row["runs_refunded"]),
    }
