"""The results database's schema, as numbered migrations applied once each.

:func:`migrate` is idempotent and safe to call from many processes at once:
it takes a transaction-scoped advisory lock, reads which versions
``squall_schema_migrations`` already holds, and applies only the missing ones,
in order, in the same transaction. A newer squall adds a migration at the end
of :data:`MIGRATIONS`; an applied migration is never edited. A database that
holds a migration newer than this squall knows (:data:`NEWEST_VERSION`) was
written by a newer squall: :func:`migrate` and :func:`known_schema_version`
refuse it with :class:`SchemaTooNew`, touching nothing.

``test_accounts`` / ``test_account_debits`` are the tables the ``db_race``
scenario creates (:data:`squall.scenarios.db_race.SCHEMA` is executed as is),
so one database can be both a run's database and its results database.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from squall.scenarios.db_race import SCHEMA as DB_RACE_SCHEMA

#: Key of the advisory lock that serialises migrations (any stable 64-bit number).
MIGRATION_LOCK = "squall.store.migrations"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


_TIMESTAMPS = """
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
"""

_CHILD = "session_id BIGINT NOT NULL REFERENCES high_load_sessions (id) ON DELETE CASCADE"

#: Tables with an ``updated_at`` column kept current by :func:`squall_touch_updated_at`.
TOUCHED_TABLES = (
    "high_load_sessions",
    "performance_metrics",
    "race_condition_events",
    "concurrent_test_users",
    "concurrent_user_operations",
    "websocket_coordination",
    "shared_resources",
    "user_isolation_test_data",
    "resource_samples",
    "test_accounts",
)

#: Every table the results database holds, for the health report.
TABLES = (*TOUCHED_TABLES, "test_account_debits")

_TABLES_SQL = f"""
CREATE OR REPLACE FUNCTION squall_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE TABLE IF NOT EXISTS high_load_sessions (
    id BIGSERIAL PRIMARY KEY,
    run_id TEXT NOT NULL UNIQUE,
    report_schema TEXT NOT NULL,
    scenario_set TEXT NOT NULL,
    scenarios TEXT[] NOT NULL,
    config JSONB NOT NULL,
    squall_version TEXT NOT NULL,
    python_version TEXT NOT NULL,
    platform TEXT NOT NULL,
    host TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    interrupted BOOLEAN NOT NULL DEFAULT false,
    verdict TEXT NOT NULL CHECK (verdict IN ('passed', 'failed', 'interrupted')),
    thresholds_passed INTEGER NOT NULL DEFAULT 0,
    thresholds_failed INTEGER NOT NULL DEFAULT 0,
    thresholds_not_applicable INTEGER NOT NULL DEFAULT 0,
    {_TIMESTAMPS}
);
CREATE INDEX IF NOT EXISTS high_load_sessions_set_started
    ON high_load_sessions (scenario_set, started_at DESC);
CREATE INDEX IF NOT EXISTS high_load_sessions_started ON high_load_sessions (started_at DESC);

CREATE TABLE IF NOT EXISTS performance_metrics (
    id BIGSERIAL PRIMARY KEY,
    {_CHILD},
    scenario TEXT NOT NULL,
    metric TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('trend', 'counter', 'rate', 'gauge')),
    count BIGINT,
    min DOUBLE PRECISION,
    mean DOUBLE PRECISION,
    p50 DOUBLE PRECISION,
    p90 DOUBLE PRECISION,
    p95 DOUBLE PRECISION,
    p99 DOUBLE PRECISION,
    p999 DOUBLE PRECISION,
    max DOUBLE PRECISION,
    rate DOUBLE PRECISION,
    per_second DOUBLE PRECISION,
    value DOUBLE PRECISION,
    histogram TEXT,
    {_TIMESTAMPS},
    UNIQUE (session_id, scenario, metric)
);
CREATE INDEX IF NOT EXISTS performance_metrics_scenario_metric
    ON performance_metrics (scenario, metric, session_id);

CREATE TABLE IF NOT EXISTS race_condition_events (
    id BIGSERIAL PRIMARY KEY,
    {_CHILD},
    scenario TEXT NOT NULL,
    source TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('detected', 'prevented', 'violation')),
    count BIGINT NOT NULL DEFAULT 1 CHECK (count >= 0),
    checker TEXT,
    message TEXT,
    evidence JSONB NOT NULL DEFAULT '{{}}'::jsonb,
    occurred_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    {_TIMESTAMPS}
);
CREATE INDEX IF NOT EXISTS race_condition_events_session
    ON race_condition_events (session_id, scenario);
CREATE INDEX IF NOT EXISTS race_condition_events_kind
    ON race_condition_events (kind, occurred_at DESC);

CREATE TABLE IF NOT EXISTS concurrent_test_users (
    id BIGSERIAL PRIMARY KEY,
    {_CHILD},
    scenario TEXT NOT NULL,
    users INTEGER NOT NULL,
    peak_users INTEGER,
    processes INTEGER,
    model TEXT,
    workload JSONB NOT NULL DEFAULT '{{}}'::jsonb,
    {_TIMESTAMPS},
    UNIQUE (session_id, scenario)
);

CREATE TABLE IF NOT EXISTS concurrent_user_operations (
    id BIGSERIAL PRIMARY KEY,
    {_CHILD},
    scenario TEXT NOT NULL,
    operation TEXT NOT NULL,
    ok BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    per_second DOUBLE PRECISION,
    {_TIMESTAMPS},
    UNIQUE (session_id, scenario, operation)
);
CREATE INDEX IF NOT EXISTS concurrent_user_operations_operation
    ON concurrent_user_operations (scenario, operation);

CREATE TABLE IF NOT EXISTS websocket_coordination (
    id BIGSERIAL PRIMARY KEY,
    {_CHILD},
    scenario TEXT NOT NULL,
    connections BIGINT NOT NULL,
    connect_p95_s DOUBLE PRECISION,
    messages_sent BIGINT,
    messages_received BIGINT,
    delivery_rate DOUBLE PRECISION,
    success_rate DOUBLE PRECISION,
    errors JSONB NOT NULL DEFAULT '[]'::jsonb,
    {_TIMESTAMPS},
    UNIQUE (session_id, scenario)
);

CREATE TABLE IF NOT EXISTS shared_resources (
    id BIGSERIAL PRIMARY KEY,
    {_CHILD},
    scenario TEXT NOT NULL,
    resource TEXT NOT NULL,
    mode TEXT NOT NULL,
    contenders INTEGER,
    acquired BIGINT NOT NULL DEFAULT 0,
    contended BIGINT NOT NULL DEFAULT 0,
    conflicts BIGINT NOT NULL DEFAULT 0,
    retries BIGINT NOT NULL DEFAULT 0,
    violations BIGINT NOT NULL DEFAULT 0,
    details JSONB NOT NULL DEFAULT '{{}}'::jsonb,
    {_TIMESTAMPS},
    UNIQUE (session_id, scenario, resource)
);

CREATE TABLE IF NOT EXISTS user_isolation_test_data (
    id BIGSERIAL PRIMARY KEY,
    {_CHILD},
    scenario TEXT NOT NULL,
    source TEXT NOT NULL,
    checker TEXT NOT NULL,
    valid BOOLEAN,
    summary TEXT NOT NULL,
    counts JSONB NOT NULL DEFAULT '{{}}'::jsonb,
    evidence JSONB NOT NULL DEFAULT '[]'::jsonb,
    {_TIMESTAMPS}
);
CREATE INDEX IF NOT EXISTS user_isolation_test_data_session
    ON user_isolation_test_data (session_id, scenario);

CREATE TABLE IF NOT EXISTS resource_samples (
    id BIGSERIAL PRIMARY KEY,
    {_CHILD},
    scenario TEXT NOT NULL,
    process_group TEXT NOT NULL,
    t DOUBLE PRECISION NOT NULL,
    rss_mb DOUBLE PRECISION NOT NULL,
    cpu_percent DOUBLE PRECISION NOT NULL,
    threads INTEGER,
    open_files INTEGER,
    sockets INTEGER,
    processes INTEGER,
    {_TIMESTAMPS}
);
CREATE INDEX IF NOT EXISTS resource_samples_series
    ON resource_samples (session_id, scenario, process_group, t);

{DB_RACE_SCHEMA}
"""

_TRIGGERS_SQL = "\n".join(
    f"CREATE OR REPLACE TRIGGER {table}_touch BEFORE UPDATE ON {table} "
    "FOR EACH ROW EXECUTE FUNCTION squall_touch_updated_at();"
    for table in TOUCHED_TABLES
)

_FUNCTIONS_SQL = """
CREATE OR REPLACE FUNCTION squall_record_race_event(
    p_session_id BIGINT,
    p_scenario TEXT,
    p_source TEXT,
    p_kind TEXT,
    p_count BIGINT DEFAULT 1,
    p_checker TEXT DEFAULT NULL,
    p_message TEXT DEFAULT NULL,
    p_evidence JSONB DEFAULT '{}'::jsonb
) RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
    new_id BIGINT;
BEGIN
    IF p_kind NOT IN ('detected', 'prevented', 'violation') THEN
        RAISE EXCEPTION 'race event kind % is not one of detected, prevented, violation',
            p_kind USING ERRCODE = '22023';
    END IF;
    INSERT INTO race_condition_events
        (session_id, scenario, source, kind, count, checker, message, evidence)
    VALUES (p_session_id, p_scenario, p_source, p_kind, p_count, p_checker, p_message,
            COALESCE(p_evidence, '{}'::jsonb))
    RETURNING id INTO new_id;
    RETURN new_id;
END
$$;

CREATE OR REPLACE FUNCTION squall_metric_statistics(p_session_id BIGINT)
RETURNS TABLE (
    metric TEXT,
    kind TEXT,
    scenarios BIGINT,
    total_count BIGINT,
    mean DOUBLE PRECISION,
    p95_max DOUBLE PRECISION,
    p99_max DOUBLE PRECISION,
    max DOUBLE PRECISION,
    rate_min DOUBLE PRECISION,
    per_second_sum DOUBLE PRECISION,
    value_max DOUBLE PRECISION
)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY
    SELECT pm.metric,
           min(pm.kind),
           count(*),
           sum(pm.count)::BIGINT,
           CASE WHEN sum(pm.count) > 0
                THEN sum(pm.mean * pm.count) / sum(pm.count) END,
           max(pm.p95),
           max(pm.p99),
           max(pm.max),
           min(pm.rate),
           sum(pm.per_second),
           max(pm.value)
    FROM performance_metrics pm
    WHERE pm.session_id = p_session_id
    GROUP BY pm.metric
    ORDER BY pm.metric;
END
$$;

CREATE OR REPLACE FUNCTION squall_table_health()
RETURNS TABLE (
    table_name TEXT,
    row_count BIGINT,
    dead_tuples BIGINT,
    dead_ratio DOUBLE PRECISION,
    total_bytes BIGINT,
    last_write TIMESTAMPTZ
)
LANGUAGE plpgsql AS $$
DECLARE
    t TEXT;
    live BIGINT;
    dead BIGINT;
    written TIMESTAMPTZ;
BEGIN
    FOREACH t IN ARRAY ARRAY[__TABLES__] LOOP
        EXECUTE format('SELECT count(*), max(%I) FROM %I',
                       CASE WHEN t = 'test_account_debits' THEN 'created_at'
                            ELSE 'updated_at' END, t)
            INTO live, written;
        SELECT COALESCE(s.n_dead_tup, 0) INTO dead
            FROM pg_stat_user_tables s WHERE s.relname = t AND s.schemaname = current_schema();
        table_name := t;
        row_count := live;
        dead_tuples := COALESCE(dead, 0);
        dead_ratio := CASE WHEN live + COALESCE(dead, 0) > 0
                           THEN COALESCE(dead, 0)::DOUBLE PRECISION / (live + COALESCE(dead, 0))
                           ELSE 0 END;
        total_bytes := pg_total_relation_size(t::regclass);
        last_write := written;
        RETURN NEXT;
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION squall_purge_older_than(p_retention INTERVAL)
RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
    removed BIGINT;
BEGIN
    IF p_retention < INTERVAL '0' THEN
        RAISE EXCEPTION 'retention % is negative; pass a positive interval such as 30 days',
            p_retention USING ERRCODE = '22023';
    END IF;
    DELETE FROM high_load_sessions WHERE started_at < now() - p_retention;
    GET DIAGNOSTICS removed = ROW_COUNT;
    RETURN removed;
END
$$;
""".replace("__TABLES__", ", ".join(f"'{t}'" for t in TABLES))

#: ``squall_metric_statistics`` leaving out the rows of a metric without samples: a trend
#: or rate with ``count`` 0 holds NULL statistics, but an older squall stored zeros there,
#: which the minimum of the rates (and the maxima, when every row was empty) took as values.
_STATISTICS_OF_SAMPLES_SQL = """
CREATE OR REPLACE FUNCTION squall_metric_statistics(p_session_id BIGINT)
RETURNS TABLE (
    metric TEXT,
    kind TEXT,
    scenarios BIGINT,
    total_count BIGINT,
    mean DOUBLE PRECISION,
    p95_max DOUBLE PRECISION,
    p99_max DOUBLE PRECISION,
    max DOUBLE PRECISION,
    rate_min DOUBLE PRECISION,
    per_second_sum DOUBLE PRECISION,
    value_max DOUBLE PRECISION
)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY
    SELECT pm.metric,
           min(pm.kind),
           count(*),
           sum(pm.count)::BIGINT,
           CASE WHEN sum(pm.count) > 0
                THEN sum(pm.mean * pm.count) / sum(pm.count) END,
           max(pm.p95) FILTER (WHERE pm.count > 0),
           max(pm.p99) FILTER (WHERE pm.count > 0),
           max(pm.max) FILTER (WHERE pm.count > 0),
           min(pm.rate) FILTER (WHERE pm.count > 0),
           sum(pm.per_second),
           max(pm.value)
    FROM performance_metrics pm
    WHERE pm.session_id = p_session_id
    GROUP BY pm.metric
    ORDER BY pm.metric;
END
$$;
"""

#: ``websocket_coordination``'s figures of nothing set to NULL, as a newer squall stores
#: them: an older squall copied an empty rate's 0 into ``delivery_rate`` / ``success_rate``
#: (and a 0 into ``connect_p95_s`` when no connection was timed). The row itself cannot tell
#: that 0 from 0 %; the scenario's ``performance_metrics`` row of the rate can (its ``count``
#: is the rate's total), so the rows are rewritten here rather than left to every reader.
_COORDINATION_WITHOUT_SAMPLES_SQL = """
UPDATE websocket_coordination w SET delivery_rate = NULL
FROM performance_metrics m
WHERE w.delivery_rate IS NOT NULL
  AND m.session_id = w.session_id AND m.scenario = w.scenario
  AND m.metric = 'delivery' AND m.kind = 'rate' AND COALESCE(m.count, 0) = 0;

UPDATE websocket_coordination w SET success_rate = NULL
FROM performance_metrics m
WHERE w.success_rate IS NOT NULL
  AND m.session_id = w.session_id AND m.scenario = w.scenario
  AND m.metric = 'success' AND m.kind = 'rate' AND COALESCE(m.count, 0) = 0;

UPDATE websocket_coordination SET connect_p95_s = NULL
WHERE connect_p95_s IS NOT NULL AND connections = 0;
"""

#: ``performance_metrics``' statistics of nothing set to NULL, as a newer squall stores them:
#: an older squall stored 0 for every statistic of a trend with no samples and for the rate
#: of a rate with none (``count`` 0 in both, which tells them from a 0 s or 0 % measured).
_METRICS_WITHOUT_SAMPLES_SQL = """
UPDATE performance_metrics
SET min = NULL, mean = NULL, p50 = NULL, p90 = NULL, p95 = NULL, p99 = NULL, p999 = NULL,
    max = NULL
WHERE kind = 'trend' AND COALESCE(count, 0) = 0
  AND num_nonnulls(min, mean, p50, p90, p95, p99, p999, max) > 0;

UPDATE performance_metrics SET rate = NULL
WHERE kind = 'rate' AND COALESCE(count, 0) = 0 AND rate IS NOT NULL;
"""

#: A run none of whose scenarios ran (``squall run`` says NOTHING RAN) is stored as such:
#: it was stored as passed, though nothing was judged.
_NOTHING_RAN_SQL = """
ALTER TABLE high_load_sessions DROP CONSTRAINT IF EXISTS high_load_sessions_verdict_check;
ALTER TABLE high_load_sessions ADD CONSTRAINT high_load_sessions_verdict_check
    CHECK (verdict IN ('passed', 'failed', 'interrupted', 'nothing ran'));
"""

#: Every migration, oldest first. Append only.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "results tables", _TABLES_SQL),
    Migration(2, "updated_at triggers", _TRIGGERS_SQL),
    Migration(3, "functions", _FUNCTIONS_SQL),
    Migration(4, "metric statistics of samples only", _STATISTICS_OF_SAMPLES_SQL),
    Migration(5, "coordination figures without samples", _COORDINATION_WITHOUT_SAMPLES_SQL),
    Migration(6, "metric statistics without samples", _METRICS_WITHOUT_SAMPLES_SQL),
    Migration(7, "verdict of a run in which nothing ran", _NOTHING_RAN_SQL),
)


#: The newest schema version this squall knows: its last migration's.
NEWEST_VERSION = MIGRATIONS[-1].version


class SchemaTooNew(Exception):
    """The database's schema is newer than :data:`NEWEST_VERSION`: a newer squall wrote it.

    :func:`squall.store.location.connection` turns it into
    :class:`~squall.store.location.ResultsDbTooNew`, which names the database and the fix.
    """

    def __init__(self, version: int) -> None:
        super().__init__(
            f"its schema is at version {version}, newer than version {NEWEST_VERSION}, "
            "the newest this squall knows"
        )
        self.version = version


class ForeignSchema(Exception):
    """The database holds a ``squall_schema_migrations`` table squall did not make (another
    application's of the same name): its runs cannot be stored or read there."""


async def _require_ours(conn: asyncpg.Connection) -> bool:
    """Whether ``squall_schema_migrations`` exists; :class:`ForeignSchema` when it does but
    does not number its versions with integers as squall's does."""
    row = await conn.fetchrow(
        "SELECT to_regclass('squall_schema_migrations') IS NOT NULL AS exists, "
        "(SELECT atttypid::regtype::text FROM pg_attribute "
        "WHERE attrelid = to_regclass('squall_schema_migrations') AND attname = 'version' "
        "AND NOT attisdropped) AS kind"
    )
    exists, kind = row["exists"], row["kind"]
    if exists and kind != "integer":
        found = "no version column" if kind is None else f"a {kind} version column"
        raise ForeignSchema(
            f"its table squall_schema_migrations is not squall's ({found}, where squall "
            "numbers its migrations with integers): another application uses the name"
        )
    return bool(exists)


def _require_known(version: int) -> int:
    if version > NEWEST_VERSION:
        raise SchemaTooNew(version)
    return version


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Bring the schema up to date; return the versions this call applied.

    :class:`SchemaTooNew`, with nothing applied, when the database is at a version newer
    than this squall knows.
    """
    applied: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", MIGRATION_LOCK)
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS squall_schema_migrations (
                version INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )
            """
        )
        # db_race's ensure_schema() creates test_accounts under this lock too.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('squall.test_accounts'))")
        await _require_ours(conn)
        done = {
            r["version"] for r in await conn.fetch("SELECT version FROM squall_schema_migrations")
        }
        _require_known(max(done, default=0))
        for migration in MIGRATIONS:
            if migration.version in done:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO squall_schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            applied.append(migration.version)
    return applied


async def schema_version(conn: asyncpg.Connection) -> int:
    """The highest applied migration, 0 for a database squall has never migrated."""
    if not await _require_ours(conn):
        return 0
    return int(
        await conn.fetchval("SELECT COALESCE(max(version), 0) FROM squall_schema_migrations")
    )


async def known_schema_version(conn: asyncpg.Connection) -> int:
    """:func:`schema_version`, or :class:`SchemaTooNew` when this squall does not know it."""
    return _require_known(await schema_version(conn))
