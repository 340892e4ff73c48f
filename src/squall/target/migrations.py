"""Versioned schema migrations, applied idempotently at every worker start.

All workers start at once, so the whole check-and-apply happens in one transaction
holding ``pg_advisory_xact_lock``: the first worker applies what is missing, the
others wait on the lock and then find every version already recorded in
``schema_migrations``.

A database this platform cannot serve is refused before anything is applied
(:class:`SchemaRefused`): one whose schema a newer platform migrated (an older
platform would run beside functions it does not know, and their counters would drift),
or one where another application's ``schema_migrations`` or tables already stand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import asyncpg

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
    Migration(
        3,
        "cheaper submit: queued-run counter on the thread, CHECKs as domains, no GIN",
        """
        -- Queued runs per thread, kept on the thread row the submit locks anyway: the
        -- queue bound becomes part of the statement that takes that lock instead of a
        -- count(*) after it. Every change of a run to or from 'queued' changes it in the
        -- same transaction: squall_submit (+1), the scheduler's claim (-1), requeue (+1).
        ALTER TABLE threads ADD COLUMN queued integer NOT NULL DEFAULT 0;
        UPDATE threads t SET queued = q.n
            FROM (SELECT thread_id, count(*) AS n FROM runs WHERE status = 'queued'
                  GROUP BY thread_id) q
            WHERE t.id = q.thread_id;

        -- The same rules as the CHECK constraints they replace, on the hot tables. A
        -- table CHECK is re-read and re-planned by every statement that writes the table;
        -- a domain's is planned once per session (type cache). Each domain is attached
        -- without constraint (no table rewrite) and then validated in place.
        CREATE DOMAIN squall_run_status AS text;
        ALTER TABLE runs DROP CONSTRAINT runs_status_check,
            ALTER COLUMN status TYPE squall_run_status;
        ALTER DOMAIN squall_run_status ADD CONSTRAINT squall_run_status_check
            CHECK (VALUE IN ('queued', 'running', 'completed', 'cancelled', 'failed'));
        CREATE DOMAIN squall_message_role AS text;
        ALTER TABLE messages DROP CONSTRAINT messages_role_check,
            ALTER COLUMN role TYPE squall_message_role;
        ALTER DOMAIN squall_message_role ADD CONSTRAINT squall_message_role_check
            CHECK (VALUE IN ('user', 'assistant'));
        CREATE DOMAIN squall_credits AS bigint;
        ALTER TABLE accounts DROP CONSTRAINT accounts_balance_check,
            ALTER COLUMN balance TYPE squall_credits;
        ALTER TABLE ledger DROP CONSTRAINT ledger_amount_check,
            ALTER COLUMN amount TYPE squall_credits;
        ALTER DOMAIN squall_credits ADD CONSTRAINT squall_credits_check CHECK (VALUE >= 0);

        -- history_search filters one thread's messages: the planner takes
        -- messages_thread_pos and filters the stored tsvector. It added the GIN index only
        -- for a rare word in a long thread, and was no faster with it (1.1 ms against
        -- 0.9 ms for 5,000 messages), so the index was maintained on every message for
        -- nothing. The stored `search` column stays.
        DROP INDEX messages_search;

        -- One accepted user_message, five statements. The thread upsert creates the thread
        -- or locks it, checks the owner and the queue bound and counts the run in one
        -- statement: ON CONFLICT DO UPDATE locks the existing row and evaluates its WHERE
        -- on the latest version, so concurrent submits on any worker see each other's
        -- counts. A row the WHERE rejects stays locked, so the refusal's numbers are exact.
        -- The debit still comes last (the hot account row is locked only for the debit
        -- and the ledger insert); a refusal raises and the whole statement rolls back.
        CREATE OR REPLACE FUNCTION squall_submit(
            p_thread text, p_user text, p_message text, p_run text, p_content text,
            p_client_msg_id text, p_cost bigint, p_initial bigint, p_max_queued bigint
        ) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
        DECLARE
            v_owner text;
            v_queued bigint;
            v_left bigint;
        BEGIN
            INSERT INTO threads AS t (id, user_id, queued) VALUES (p_thread, p_user, 1)
                ON CONFLICT (id) DO UPDATE SET queued = t.queued + 1
                WHERE t.user_id = p_user AND t.queued < p_max_queued
                RETURNING t.queued INTO v_queued;
            IF NOT FOUND THEN
                SELECT user_id, queued INTO v_owner, v_queued FROM threads WHERE id = p_thread;
                IF v_owner IS DISTINCT FROM p_user THEN
                    RAISE EXCEPTION 'squall_submit' USING DETAIL = 'not_found', HINT = '0';
                END IF;
                RAISE EXCEPTION 'squall_submit' USING DETAIL = 'queue_full',
                    HINT = v_queued::text;
            END IF;
            IF v_queued > p_max_queued THEN  -- a new thread under a bound below one
                RAISE EXCEPTION 'squall_submit' USING DETAIL = 'queue_full',
                    HINT = (v_queued - 1)::text;
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
    Migration(
        4,
        "group commit: squall_submit_many, several submits of one user in one statement",
        """
        -- Several submits of one user in one statement, with exactly the outcome of calling
        -- squall_submit for each element in order (p_* arrays: one entry per element). It
        -- returns one row per element, in input order: 'ok' with the balance left after it,
        -- or the refusal ('not_found', 'queue_full', 'insufficient_credits') with the number
        -- squall_submit's HINT would carry. A refused element leaves nothing behind. Any
        -- error (a duplicate id, or 'squall_submit_many' when the balance fell between its
        -- read and the debit) rolls the whole batch back; callers then submit the elements
        -- one by one.
        --
        -- Set-based: the threads are locked (existing ones, in id order) or created once
        -- each; one classification query decides which elements pass their thread's owner
        -- check and queue bound (the first queued-bound-minus-queued elements of a thread,
        -- in input order); one INSERT writes the messages, one the runs, and one statement
        -- debits the whole batch with a conditional UPDATE and writes its ledger rows, so
        -- the hot account row is locked only at the end, as in squall_submit.
        --
        -- The cost is the same for every element, so when the balance cannot cover all
        -- passing elements, exactly the first floor(balance / cost) of them pass and every
        -- later one is refused: those that pass their thread's checks for insufficient
        -- credits, the others for their thread, with the counts the thread has then (a
        -- refused element does not count towards its thread's queue). That slow path locks
        -- the account row before writing, so the balance it decides on cannot move.
        CREATE FUNCTION squall_submit_many(
            p_user text, p_threads text[], p_messages text[], p_runs text[],
            p_contents text[], p_client_msg_ids text[], p_cost bigint, p_initial bigint,
            p_max_queued bigint
        ) RETURNS TABLE (status text, number bigint) LANGUAGE plpgsql VOLATILE AS $$
        #variable_conflict use_column
        DECLARE
            v_n integer := coalesce(cardinality(p_threads), 0);
            v_want text[];             -- threads of the batch neither locked nor created yet
            v_tid text[] := '{}';      -- per thread: id, owner, queued before the batch,
            v_towner text[] := '{}';   -- queued in the row now, created by this batch
            v_tq0 bigint[] := '{}';
            v_tcur bigint[] := '{}';
            v_tnew boolean[] := '{}';
            v_id text[];
            v_owner text[];
            v_queued bigint[];
            v_pass boolean[];          -- per element: passes its thread's checks
            v_rank bigint[];           -- passing elements up to this one, in input order
            v_passed bigint;
            v_seen bigint;             -- the balance read without a lock
            v_start bigint;            -- the balance before the batch's first debit
            v_ok bigint := 0;          -- the first v_ok passing elements are charged
            v_end bigint;
        BEGIN
            IF coalesce(cardinality(p_messages), 0) <> v_n
                OR coalesce(cardinality(p_runs), 0) <> v_n
                OR coalesce(cardinality(p_contents), 0) <> v_n
                OR coalesce(cardinality(p_client_msg_ids), 0) <> v_n THEN
                RAISE EXCEPTION 'squall_submit_many: the element arrays differ in length';
            END IF;
            IF v_n = 0 THEN
                RETURN;
            END IF;

            -- Lock the existing threads in id order (every batch does, so two batches of
            -- one user cannot deadlock on them), create the missing ones counting their
            -- passing elements already, and lock as existing any a concurrent transaction
            -- created meanwhile. A bound below one creates nothing (squall_submit's
            -- creation would be refused).
            v_want := ARRAY(SELECT DISTINCT t FROM unnest(p_threads) AS t ORDER BY t);
            LOOP
                SELECT coalesce(array_agg(l.id ORDER BY l.id), '{}'),
                       coalesce(array_agg(l.user_id ORDER BY l.id), '{}'),
                       coalesce(array_agg(l.queued::bigint ORDER BY l.id), '{}')
                    INTO v_id, v_owner, v_queued
                    FROM (SELECT id, user_id, queued FROM threads
                          WHERE id = ANY (v_want) ORDER BY id FOR NO KEY UPDATE) AS l;
                v_tid := v_tid || v_id;
                v_towner := v_towner || v_owner;
                v_tq0 := v_tq0 || v_queued;
                v_tcur := v_tcur || v_queued;
                v_tnew := v_tnew || array_fill(false, ARRAY[cardinality(v_id)]);
                v_want := ARRAY(SELECT t FROM unnest(v_want) AS t WHERE t <> ALL (v_id) ORDER BY t);
                EXIT WHEN cardinality(v_want) = 0 OR p_max_queued < 1;
                WITH created AS (
                    INSERT INTO threads (id, user_id, queued)
                    SELECT t, p_user, least(count(*), p_max_queued) FROM unnest(p_threads) AS t
                        WHERE t = ANY (v_want) GROUP BY t ORDER BY t
                    ON CONFLICT (id) DO NOTHING
                    RETURNING id, queued
                )
                SELECT coalesce(array_agg(c.id ORDER BY c.id), '{}'),
                       coalesce(array_agg(c.queued::bigint ORDER BY c.id), '{}')
                    INTO v_id, v_queued FROM created AS c;
                v_tid := v_tid || v_id;
                v_towner := v_towner || array_fill(p_user, ARRAY[cardinality(v_id)]);
                v_tq0 := v_tq0 || array_fill(0::bigint, ARRAY[cardinality(v_id)]);
                v_tcur := v_tcur || v_queued;
                v_tnew := v_tnew || array_fill(true, ARRAY[cardinality(v_id)]);
                v_want := ARRAY(SELECT t FROM unnest(v_want) AS t WHERE t <> ALL (v_id) ORDER BY t);
                EXIT WHEN cardinality(v_want) = 0;
            END LOOP;

            -- Classification: an element passes when its thread is the user's and it is
            -- among the first (bound - queued) elements of that thread.
            SELECT array_agg(c.pass ORDER BY c.i), array_agg(c.rank ORDER BY c.i),
                   (SELECT a.balance FROM accounts AS a WHERE a.user_id = p_user)
                INTO v_pass, v_rank, v_seen
                FROM (
                    SELECT p.i, p.pass, sum(p.pass::integer) OVER (ORDER BY p.i) AS rank
                    FROM (
                        SELECT e.i, coalesce(th.owner = p_user AND row_number() OVER (
                                PARTITION BY e.thread ORDER BY e.i) <= p_max_queued - th.q0,
                            false) AS pass
                        FROM unnest(p_threads) WITH ORDINALITY AS e (thread, i)
                        LEFT JOIN unnest(v_tid, v_towner, v_tq0) AS th (id, owner, q0)
                            ON th.id = e.thread
                    ) AS p
                ) AS c;
            v_passed := v_rank[v_n];

            IF v_passed > 0 AND v_seen >= v_passed * p_cost THEN
                v_ok := v_passed;  -- fast path: the debit at the end re-checks the balance
            ELSIF v_passed > 0 THEN
                -- Slow path: lock the account first, so the balance decided on stays.
                SELECT a.balance INTO v_start FROM accounts AS a
                    WHERE a.user_id = p_user FOR NO KEY UPDATE;
                IF NOT FOUND THEN
                    IF p_cost > p_initial THEN
                        v_start := p_initial;  -- squall_submit's account would roll back
                    ELSE
                        INSERT INTO accounts (user_id, balance, initial)
                            VALUES (p_user, p_initial, p_initial)
                            ON CONFLICT (user_id) DO NOTHING;
                        SELECT a.balance INTO STRICT v_start FROM accounts AS a
                            WHERE a.user_id = p_user FOR NO KEY UPDATE;
                    END IF;
                END IF;
                v_ok := CASE WHEN p_cost = 0 THEN v_passed
                             ELSE least(v_passed, v_start / p_cost) END;
            END IF;

            -- Each thread of the user ends with its queued count plus its charged elements;
            -- a thread this batch created for refused elements only is removed again.
            WITH charged AS (
                SELECT p_threads[i] AS id, count(*) AS k
                FROM generate_subscripts(p_threads, 1) AS i
                WHERE v_pass[i] AND v_rank[i] <= v_ok GROUP BY 1
            ), target AS (
                SELECT th.id, th.cur, th.created, th.q0 + coalesce(charged.k, 0) AS queued
                FROM unnest(v_tid, v_towner, v_tq0, v_tcur, v_tnew)
                    AS th (id, owner, q0, cur, created)
                LEFT JOIN charged ON charged.id = th.id
                WHERE th.owner = p_user
            ), dropped AS (
                DELETE FROM threads AS t USING target
                WHERE t.id = target.id AND target.created AND target.queued = 0
            )
            UPDATE threads AS t SET queued = target.queued FROM target
                WHERE t.id = target.id AND target.queued <> target.cur
                    AND NOT (target.created AND target.queued = 0);

            IF v_ok > 0 THEN
                INSERT INTO messages (id, thread_id, user_id, role, content, run_id,
                                      client_msg_id)
                SELECT p_messages[i], p_threads[i], p_user, 'user', p_contents[i], p_runs[i],
                       p_client_msg_ids[i]
                FROM generate_subscripts(p_threads, 1) AS i
                WHERE v_pass[i] AND v_rank[i] <= v_ok ORDER BY i;
                INSERT INTO runs (id, thread_id, user_id, message_id)
                SELECT p_runs[i], p_threads[i], p_user, p_messages[i]
                FROM generate_subscripts(p_threads, 1) AS i
                WHERE v_pass[i] AND v_rank[i] <= v_ok ORDER BY i;
                WITH debit AS (
                    UPDATE accounts SET balance = balance - v_ok * p_cost
                    WHERE user_id = p_user AND balance >= v_ok * p_cost
                    RETURNING balance
                ), ledger_rows AS (
                    INSERT INTO ledger (run_id, user_id, amount)
                    SELECT p_runs[i], p_user, p_cost
                    FROM debit, generate_subscripts(p_runs, 1) AS i
                    WHERE v_pass[i] AND v_rank[i] <= v_ok
                )
                SELECT debit.balance INTO v_end FROM debit;
                IF NOT FOUND THEN  -- fast path only: the balance fell since it was read
                    RAISE EXCEPTION 'squall_submit_many' USING DETAIL = 'balance_changed',
                        HINT = 'submit the elements one by one';
                END IF;
                v_start := v_end + v_ok * p_cost;
            END IF;

            -- Outcomes in input order. A refused element's thread count is the thread's
            -- queued count before the batch plus the charged elements before it; below the
            -- bound, it would have passed its thread and failed for credits.
            RETURN QUERY
            SELECT CASE WHEN s.owner <> p_user THEN 'not_found'
                        WHEN s.ok THEN 'ok'
                        WHEN s.owner IS NOT NULL AND s.cur < p_max_queued
                            THEN 'insufficient_credits'
                        ELSE 'queue_full' END,
                   CASE WHEN s.owner <> p_user THEN 0
                        WHEN s.ok THEN v_start - s.rank * p_cost
                        WHEN s.owner IS NOT NULL AND s.cur < p_max_queued
                            THEN v_start - v_ok * p_cost
                        ELSE s.cur END
            FROM (
                SELECT e.i, e.ok, e.rank, e.owner,
                       e.q0 + count(*) FILTER (WHERE e.ok) OVER (PARTITION BY e.thread
                           ORDER BY e.i ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                           AS cur
                FROM (
                    SELECT x.i, x.thread, v_pass[x.i] AND v_rank[x.i] <= v_ok AS ok,
                           v_rank[x.i] AS rank, th.owner, coalesce(th.q0, 0) AS q0
                    FROM unnest(p_threads) WITH ORDINALITY AS x (thread, i)
                    LEFT JOIN unnest(v_tid, v_towner, v_tq0) AS th (id, owner, q0)
                        ON th.id = x.thread
                ) AS e
            ) AS s
            ORDER BY s.i;
        END
        $$;
        """,
    ),
)


#: The newest schema version this platform knows.
NEWEST_VERSION = MIGRATIONS[-1].version

#: The tables the first migration creates: found in a database without the platform's
#: ``schema_migrations``, they are another application's.
FIRST_TABLES = tuple(re.findall(r"CREATE TABLE (\w+)", MIGRATIONS[0].sql))

#: What the refusals say to do instead.
OWN_DATABASE = "give the platform a database of its own (SQUALL_DATABASE_URL)"


class SchemaRefused(Exception):
    """A database whose schema this platform cannot serve; the message names the database,
    why and what to do."""


async def check_schema(conn: asyncpg.Connection) -> None:
    """Raise :class:`SchemaRefused` when the database's schema is newer than this platform
    knows, or is another application's; touch nothing."""
    row = await conn.fetchrow(
        """
        SELECT current_database() AS database,
               (SELECT array_agg(attname::text || ':' || atttypid::regtype::text)
                FROM pg_attribute
                WHERE attrelid = to_regclass('schema_migrations') AND attnum > 0
                  AND NOT attisdropped) AS columns,
               (SELECT array_agg(name) FROM unnest($1::text[]) AS name
                WHERE to_regclass(name) IS NOT NULL) AS present
        """,
        list(FIRST_TABLES),
    )
    columns, present = row["columns"], row["present"]
    database = f"database {row['database']!r}"
    if columns is not None and not {"version:integer", "name:text"} <= set(columns):
        raise SchemaRefused(
            f"the table schema_migrations of {database} is not the platform's (it lacks an "
            f"integer version and a text name; it has {', '.join(sorted(columns))}): another "
            f"application uses the name; {OWN_DATABASE}"
        )
    newest = None
    if columns is not None:
        newest = await conn.fetchval("SELECT max(version) FROM schema_migrations")
    if newest is None:  # the first migration is still to come: its tables must not be there
        if present:
            raise SchemaRefused(
                f"{database} already holds table(s) {', '.join(present)} but no "
                "migration of the platform's: another application's, which the "
                f"platform's would collide with; {OWN_DATABASE}"
            )
        return
    if newest > NEWEST_VERSION:
        raise SchemaRefused(
            f"the schema of {database} is at version {newest}, newer than version "
            f"{NEWEST_VERSION}, the newest this platform knows: a newer squall migrated it, "
            "and this one would serve it wrongly. Run the newer squall's platform, or "
            f"{OWN_DATABASE}"
        )


async def migrate(pool: Pool) -> list[int]:
    """Apply every migration not yet recorded; return the versions this call applied.

    :class:`SchemaRefused`, with nothing applied, for a database this platform cannot serve.
    """
    applied: list[int] = []
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
        await check_schema(conn)
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
