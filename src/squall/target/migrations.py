"""Versioned schema migrations, applied idempotently at every worker start.

All workers start at once, so the whole check-and-apply happens in one transaction
holding ``pg_advisory_xact_lock``: the first worker applies what is missing, the
others wait on the lock and then find every version already recorded in
``schema_migrations``.
"""

from __future__ import annotations

from dataclasses import dataclass

from squall.target.db import Pool

#: Arbitrary constant naming "the squall.target schema" among advisory locks.
MIGRATION_LOCK_KEY = 0x5C0A11


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "accounts, ledger, threads, messages, runs, events",
        """
        CREATE TABLE accounts (
            user_id     text PRIMARY KEY,
            balance     bigint NOT NULL CHECK (balance >= 0),
            initial     bigint NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE credit_grants (
            id          bigserial PRIMARY KEY,
            user_id     text NOT NULL REFERENCES accounts (user_id),
            amount      bigint NOT NULL CHECK (amount > 0),
            granted_by  text NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE ledger (
            run_id      text PRIMARY KEY,
            user_id     text NOT NULL REFERENCES accounts (user_id),
            amount      bigint NOT NULL CHECK (amount >= 0),
            refunded    boolean NOT NULL DEFAULT false,
            created_at  timestamptz NOT NULL DEFAULT now(),
            refunded_at timestamptz
        );
        CREATE INDEX ledger_user ON ledger (user_id);
        CREATE TABLE preferences (
            user_id     text PRIMARY KEY,
            preferences jsonb NOT NULL,
            updated_at  timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE threads (
            id          text PRIMARY KEY,
            user_id     text NOT NULL,
            last_seq    bigint NOT NULL DEFAULT 0,
            fence       bigint NOT NULL DEFAULT 0,
            created_at  timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE messages (
            id            text PRIMARY KEY,
            pos           bigserial NOT NULL,
            thread_id     text NOT NULL REFERENCES threads (id),
            user_id       text NOT NULL,
            role          text NOT NULL CHECK (role IN ('user', 'assistant')),
            content       text NOT NULL,
            run_id        text,
            client_msg_id text,
            created_at    timestamptz NOT NULL DEFAULT now(),
            search        tsvector GENERATED ALWAYS AS (to_tsvector('simple', content)) STORED
        );
        CREATE INDEX messages_thread_pos ON messages (thread_id, pos);
        CREATE INDEX messages_search ON messages USING GIN (search);
        CREATE TABLE runs (
            id          text PRIMARY KEY,
            pos         bigserial NOT NULL,
            thread_id   text NOT NULL REFERENCES threads (id),
            user_id     text NOT NULL,
            message_id  text NOT NULL REFERENCES messages (id),
            status      text NOT NULL DEFAULT 'queued'
                        CHECK (status IN ('queued', 'running', 'completed', 'cancelled', 'failed')),
            worker      text,
            error       text,
            created_at  timestamptz NOT NULL DEFAULT now(),
            started_at  timestamptz,
            finished_at timestamptz
        );
        CREATE INDEX runs_queued ON runs (thread_id, pos) WHERE status = 'queued';
        CREATE UNIQUE INDEX runs_one_running_per_thread ON runs (thread_id)
            WHERE status = 'running';
        CREATE INDEX runs_user_started ON runs (user_id, started_at);
        CREATE TABLE events (
            thread_id   text NOT NULL,
            seq         bigint NOT NULL,
            run_id      text NOT NULL,
            type        text NOT NULL,
            payload     jsonb NOT NULL,
            ts          double precision NOT NULL,
            PRIMARY KEY (thread_id, seq)
        );
        """,
    ),
)


async def migrate(pool: Pool) -> list[int]:
    """Apply every migration not yet recorded; return the versions this call applied."""
    applied: list[int] = []
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    integer PRIMARY KEY,
                name       text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for migration in MIGRATIONS:
            if migration.version in done:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            applied.append(migration.version)
    return applied
