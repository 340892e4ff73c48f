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
    Migration(
        2,
        "submit in one round trip; running runs per user by index",
        """
        CREATE INDEX runs_running_user ON runs (user_id) WHERE status = 'running';

        -- One accepted user_message: lock the thread, check owner and queue bound, debit,
        -- write ledger row, message and run. Every statement of a VOLATILE function takes
        -- a new snapshot, so the queue count after the lock sees every committed run, as
        -- with separate statements. The debit comes last: the hot account row is locked
        -- only from there to the commit, never across a client round trip. A refusal
        -- raises, so the whole statement (thread, account, rows) rolls back.
        CREATE FUNCTION squall_submit(
            p_thread text, p_user text, p_message text, p_run text, p_content text,
            p_client_msg_id text, p_cost bigint, p_initial bigint, p_max_queued bigint
        ) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
        DECLARE
            v_owner text;
            v_queued bigint;
            v_left bigint;
        BEGIN
            INSERT INTO threads (id, user_id) VALUES (p_thread, p_user)
                ON CONFLICT (id) DO NOTHING;
            SELECT user_id INTO v_owner FROM threads WHERE id = p_thread FOR NO KEY UPDATE;
            IF v_owner IS DISTINCT FROM p_user THEN
                RAISE EXCEPTION 'squall_submit' USING DETAIL = 'not_found', HINT = '0';
            END IF;
            SELECT count(*) INTO v_queued FROM runs
                WHERE thread_id = p_thread AND status = 'queued';
            IF v_queued >= p_max_queued THEN
                RAISE EXCEPTION 'squall_submit' USING DETAIL = 'queue_full',
                    HINT = v_queued::text;
            END IF;
            INSERT INTO messages (id, thread_id, user_id, role, content, run_id, client_msg_id)
                VALUES (p_message, p_thread, p_user, 'user', p_content, p_run, p_client_msg_id);
            INSERT INTO runs (id, thread_id, user_id, message_id)
                VALUES (p_run, p_thread, p_user, p_message);
            UPDATE accounts SET balance = balance - p_cost
                WHERE user_id = p_user AND balance >= p_cost RETURNING balance INTO v_left;
            IF NOT FOUND THEN
                INSERT INTO accounts (user_id, balance, initial)
                    VALUES (p_user, p_initial, p_initial) ON CONFLICT (user_id) DO NOTHING;
                UPDATE accounts SET balance = balance - p_cost
                    WHERE user_id = p_user AND balance >= p_cost RETURNING balance INTO v_left;
                IF NOT FOUND THEN
                    SELECT balance INTO v_left FROM accounts WHERE user_id = p_user;
                    RAISE EXCEPTION 'squall_submit' USING DETAIL = 'insufficient_credits',
                        HINT = coalesce(v_left, 0)::text;
                END IF;
            END IF;
            INSERT INTO ledger (run_id, user_id, amount) VALUES (p_run, p_user, p_cost);
            RETURN v_left;
        END
        $$;
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
