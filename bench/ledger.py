"""Benchmark 4: committed debits per second on one hot account.

Three measurements against the same PostgreSQL:

- the ceiling: ``writers`` connections looping the atomic conditional
  ``UPDATE … SET balance = balance - 1 WHERE id = $1 AND balance >= 1`` alone
  (autocommit) on one row;
- each safe billing strategy of ``squall.scenarios.db_race`` (optimistic,
  row lock, atomic, serializable): rounds of ``writers`` concurrent debits on a
  fresh account, each debit a read, a yield, and the strategy's write plus its
  ledger row, checked by the ledger checkers;
- the platform's billing path at the database: ``writers`` connections on one
  hot account, each looping the exact statement the platform runs to accept a
  message (``squall.target.runtime.SUBMIT_SQL``: thread, queue bound, message,
  run, debit and ledger row in one ``squall_submit`` call) against a fresh
  database migrated by the platform's own migrations; afterwards the ledger is
  checked (one row per debit, balance = initial − debits) and the share of
  active backends waiting on a lock, sampled during the run, is recorded;
- the platform's own path end to end: one user with ``sockets`` sockets, each keeping one
  ``user_message`` in flight and sending the next as soon as the ack (the debit
  is committed before it) arrives; debits are counted by the platform's own
  ledger (``runs_charged`` from ``GET /v1/accounts/me``) and cross-checked
  against the acks.

Goal: the platform's path at ≥ 80 % of the ceiling.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import asyncpg
import httpx

from bench.record import Result, command_line, log, measured
from bench.stack import platform_stack
from bench.table import Goal, fmt_count, fmt_percent, ratio
from squall.scenarios.db_race import Strategy, ensure_schema, run_db_race
from squall.scenarios.target import TargetInfo
from squall.services import create_database, drop_database
from squall.target.db import create_pool
from squall.target.migrations import migrate
from squall.target.runtime import SUBMIT_SQL
from squall.target.settings import Settings

NAME = "ledger"
TITLE = "4. Ledger: committed debits / s on one hot account"
SAFE = (Strategy.OPTIMISTIC, Strategy.ROW_LOCK, Strategy.ATOMIC, Strategy.SERIALIZABLE)
#: Fast simulated model so that runs drain quickly and debits, not runs, are measured.
FAST_MODEL = {
    "SQUALL_MODEL_TTFT_MS": "0",
    "SQUALL_MODEL_TOKENS_PER_SECOND": "1000000",
    "SQUALL_MODEL_ANSWER_TOKENS": "1",
    "SQUALL_MAX_QUEUED_PER_THREAD": "1000",
}
THREADS_PER_SOCKET = 4
#: Sockets of the one user; every run's events go to all of them, so more sockets cost more.
SOCKET_COUNTS = (1, 4, 16)
#: Debits per thread before a writer of the database path moves to a fresh thread: no
#: worker drains the queued runs there, so this keeps each thread's queue short (as it
#: is on a platform whose runs complete) and well under the platform's queue bound.
RUNS_PER_THREAD = 10
#: How often the database path samples ``pg_stat_activity`` for lock waits.
WAIT_SAMPLE_S = 0.05


async def _ceiling(database_url: str, writers: int, duration: float) -> dict[str, Any]:
    pool = await asyncpg.create_pool(database_url, min_size=writers, max_size=writers)
    try:
        async with pool.acquire() as conn:
            await ensure_schema(conn)
            account = await conn.fetchval(
                "INSERT INTO test_accounts (label, balance) VALUES ('bench-ceiling', $1) "
                "RETURNING id",
                10**15,
            )
        done = [0]
        began = time.monotonic()
        end = began + duration

        async def writer() -> None:
            async with pool.acquire() as conn:
                while time.monotonic() < end:
                    row = await conn.fetchval(
                        "UPDATE test_accounts SET balance = balance - 1 "
                        "WHERE id = $1 AND balance >= 1 RETURNING balance",
                        account,
                    )
                    if row is not None:
                        done[0] += 1

        await asyncio.gather(*(writer() for _ in range(writers)))
        elapsed = time.monotonic() - began
    finally:
        await pool.close()
    return {"debits": done[0], "elapsed_s": elapsed, "debits_per_s": done[0] / elapsed}


async def _sample_waits(
    conn: Any, database: str, stop: asyncio.Event, into: dict[str, int]
) -> None:
    """Count active backends of ``database`` by what they wait on, until ``stop``."""
    while not stop.is_set():
        rows = await conn.fetch(
            "SELECT coalesce(wait_event_type, 'CPU') AS kind, count(*) AS n "
            "FROM pg_stat_activity WHERE datname = $1 AND state = 'active' "
            "AND pid <> pg_backend_pid() GROUP BY 1",
            database,
        )
        for row in rows:
            into[row["kind"]] = into.get(row["kind"], 0) + int(row["n"])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), WAIT_SAMPLE_S)


async def _platform_sql(
    database_url: str, writers: int, duration: float, *, hot: bool = True
) -> dict[str, Any]:
    """``writers`` connections looping the platform's submit statement on one hot account.

    ``hot=False`` gives every writer its own account: the same work without the hot
    row, which shows how much of the cost is waiting for the row and how much is work.
    """
    defaults = Settings()
    initial = 10**15
    users = [f"bench-hot-account{'' if hot else f'-{i}'}" for i in range(writers)]
    pool = await create_pool(database_url, max_size=writers + 1)
    try:
        applied = await migrate(pool)
        database = await pool.fetchval("SELECT current_database()")
        done = [0]
        refused: dict[str, int] = {}
        waits: dict[str, int] = {}
        stop = asyncio.Event()

        async def writer(index: int) -> None:
            k = 0
            user = users[index]
            async with pool.acquire() as conn:
                while time.monotonic() < end:
                    thread = f"w{index}-t{k // RUNS_PER_THREAD}"
                    k += 1
                    try:
                        await conn.fetchval(
                            SUBMIT_SQL,
                            thread,
                            user,
                            f"m-{index}-{k}",
                            f"r-{index}-{k}",
                            "debit",
                            f"c-{index}-{k}",
                            defaults.run_cost,
                            initial,
                            defaults.max_queued_per_thread,
                        )
                    except asyncpg.RaiseError as exc:
                        refused[str(exc.detail)] = refused.get(str(exc.detail), 0) + 1
                    else:
                        done[0] += 1

        async with pool.acquire() as sampler:
            began = time.monotonic()
            end = began + duration
            sampling = asyncio.create_task(_sample_waits(sampler, database, stop, waits))
            try:
                await asyncio.gather(*(writer(i) for i in range(writers)))
            finally:
                stop.set()
                await sampling
            elapsed = time.monotonic() - began
        row = await pool.fetchrow(
            "SELECT sum(a.balance) AS balance, sum(a.initial) AS initial, "
            "(SELECT count(*) FROM ledger l WHERE l.user_id = ANY($1::text[])) AS rows, "
            "(SELECT count(*) FROM runs r WHERE r.user_id = ANY($1::text[])) AS runs "
            "FROM accounts a WHERE a.user_id = ANY($1::text[])",
            sorted(set(users)),
        )
    finally:
        await pool.close()
    debits = done[0]
    found = row is not None and row["balance"] is not None
    balance_ok = found and int(row["initial"]) - int(row["balance"]) == debits
    ledger_ok = found and int(row["rows"]) == debits == int(row["runs"])
    samples = sum(waits.values())
    return {
        "writers": writers,
        "accounts": len(set(users)),
        "migrations_applied": applied,
        "runs_per_thread": RUNS_PER_THREAD,
        "debits": debits,
        "elapsed_s": elapsed,
        "debits_per_s": debits / elapsed,
        "refused": refused,
        "ledger_rows": int(row["rows"]) if found else None,
        "runs": int(row["runs"]) if found else None,
        "balance_spent": int(row["initial"]) - int(row["balance"]) if found else None,
        "ledger_held": balance_ok and ledger_ok and not refused,
        "wait_samples": waits,
        "lock_wait_share": (waits.get("Lock", 0) / samples) if samples else None,
    }


async def _platform_path(target: TargetInfo, sockets: int, duration: float) -> dict[str, Any]:
    import picows
    from picows import WSFrame, WSListener, WSMsgType, WSTransport

    identity = target.identities("bench-ledger")(0)
    headers = identity.auth_headers()
    counts = {"acks": 0, "errors": 0, "sent": 0}
    codes: dict[str, int] = {}
    stop_at = [float("inf")]

    class Sender(WSListener):
        def __init__(self, index: int) -> None:
            self.index = index
            self.k = 0
            self.transport: WSTransport | None = None

        def send_next(self) -> None:
            if self.transport is None or time.monotonic() >= stop_at[0]:
                return
            thread = f"s{self.index}-t{self.k % THREADS_PER_SOCKET}"
            self.k += 1
            counts["sent"] += 1
            self.transport.send(
                WSMsgType.TEXT,
                json.dumps(
                    {
                        "type": "user_message",
                        "thread_id": thread,
                        "content": "debit",
                        "client_msg_id": f"m{self.index}-{self.k}",
                    },
                    separators=(",", ":"),
                ).encode(),
            )

        def on_ws_connected(self, transport: WSTransport) -> None:
            self.transport = transport

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type is not WSMsgType.TEXT:
                return
            payload = frame.get_payload_as_bytes()
            if b'"type":"ack"' in payload:
                counts["acks"] += 1
                self.send_next()
            elif b'"type":"error"' in payload:
                counts["errors"] += 1
                start = payload.find(b'"code":"') + 8
                code = payload[start : payload.find(b'"', start)].decode(errors="replace")
                codes[code] = codes.get(code, 0) + 1
                self.send_next()

    async with httpx.AsyncClient(headers=headers, timeout=10.0) as http:

        async def charged() -> int:
            response = await http.get(f"{target.http_url}/v1/accounts/me")
            response.raise_for_status()
            return int(response.json()["runs_charged"])

        before = await charged()
        listeners: list[Sender] = []
        transports: list[WSTransport] = []
        async with asyncio.timeout(30.0):
            for index in range(sockets):
                listener = Sender(index)
                transport, _ = await picows.ws_connect(
                    lambda listener=listener: listener,
                    target.ws_url,
                    extra_headers=list(headers.items()),
                )
                listeners.append(listener)
                transports.append(transport)
        await asyncio.sleep(0.5)  # hellos
        began = time.monotonic()
        stop_at[0] = began + duration
        for listener in listeners:
            listener.send_next()
        await asyncio.sleep(duration)
        await asyncio.sleep(1.0)  # the last acks
        elapsed = stop_at[0] - began
        after = await charged()
        for transport in transports:
            transport.send_close()
            transport.disconnect()
    debits = after - before
    return {
        "sockets": sockets,
        "elapsed_s": elapsed,
        "debits": debits,
        "debits_per_s": debits / elapsed,
        "acks": counts["acks"],
        "sent": counts["sent"],
        "errors": counts["errors"],
        "error_codes": codes,
    }


def run(quick: bool) -> Result:
    result = Result(NAME, TITLE, quick, command_line(NAME, quick))
    writers = 16
    duration = 4.0 if quick else 10.0
    rounds = 10 if quick else 40
    rows: list[list[str]] = []
    with platform_stack(workers=2, settings=FAST_MODEL) as stack:
        log(f"ledger: ceiling (atomic UPDATE alone), {writers} writers, {duration:g} s")
        ceiling: dict[str, Any] = {"what": "atomic UPDATE alone", "writers": writers}
        with measured(ceiling):
            ceiling.update(asyncio.run(_ceiling(stack.database_url, writers, duration)))
        log(f"  {ceiling['debits_per_s']:,.0f} debits/s")
        top = float(ceiling["debits_per_s"])
        result.measurements.append(ceiling)
        rows.append(
            [
                "atomic UPDATE alone (ceiling)",
                str(writers),
                fmt_count(top),
                "100 %",
                "—",
            ]
        )
        log(f"ledger: platform billing path at the database (squall_submit), {writers} writers")
        sql: dict[str, Any] = {}
        for hot in (True, False):
            entry: dict[str, Any] = {
                "what": "platform squall_submit at the database"
                + ("" if hot else ", one account per writer (control)")
            }
            sql_db = create_database(stack.endpoints.database_url, "squall_bench_submit")
            try:
                with measured(entry):
                    entry.update(asyncio.run(_platform_sql(sql_db, writers, duration, hot=hot)))
            finally:
                drop_database(stack.endpoints.database_url, sql_db)
            result.measurements.append(entry)
            log(
                f"  {'hot account' if hot else 'own accounts'}: "
                f"{entry['debits_per_s']:,.0f} debits/s, ledger held={entry['ledger_held']}, "
                f"lock waits {fmt_percent(entry['lock_wait_share'])} of active backends"
            )
            rows.append(
                [
                    "platform: squall_submit at the database"
                    + ("" if hot else " (control: one account per writer)"),
                    str(writers),
                    fmt_count(entry["debits_per_s"]),
                    fmt_percent(ratio(entry["debits_per_s"], top)),
                    "held" if entry["ledger_held"] else "VIOLATED",
                ]
            )
            if hot:
                sql = entry
        lock_share = sql["lock_wait_share"]
        log(f"ledger: db_race strategies, {writers} writers × {rounds} rounds")
        race: dict[str, Any] = {"what": "db_race strategies", "writers": writers, "rounds": rounds}
        with measured(race):
            report = asyncio.run(
                run_db_race(stack.database_url, writers=writers, rounds=rounds, strategies=SAFE)
            )
        race["report"] = report.to_dict()
        result.measurements.append(race)
        for s in report.strategies:
            log(f"  {s.strategy.value}: {s.ops_per_s:,.0f} debits/s, valid={s.valid}")
            rows.append(
                [
                    f"db_race {s.strategy.value}",
                    str(writers),
                    fmt_count(s.ops_per_s),
                    fmt_percent(ratio(s.ops_per_s, top)),
                    "held" if s.valid else "VIOLATED",
                ]
            )
        best = 0.0
        for sockets in SOCKET_COUNTS:
            log(f"ledger: platform path, one user, {sockets} sockets, {duration:g} s")
            path: dict[str, Any] = {"what": "platform WebSocket path"}
            with measured(path):
                path.update(asyncio.run(_platform_path(stack.target, sockets, duration)))
            result.measurements.append(path)
            log(
                f"  {path['debits_per_s']:,.0f} debits/s ({path['acks']} acks, "
                f"{path['errors']} errors {path['error_codes']})"
            )
            best = max(best, float(path["debits_per_s"]))
            consistent = path["debits"] >= path["acks"]
            rows.append(
                [
                    "platform: one user over the WebSocket API",
                    f"{sockets} socket{'s' if sockets > 1 else ''}",
                    fmt_count(path["debits_per_s"]),
                    fmt_percent(ratio(path["debits_per_s"], top)),
                    "acks ≤ ledger rows" if consistent else "ACKS > LEDGER ROWS",
                ]
            )
    result.table = {
        "columns": ["path", "concurrency", "debits / s", "vs ceiling", "ledger"],
        "rows": rows,
    }
    result.goals += [
        Goal(
            "platform billing path at the database vs atomic UPDATE alone",
            ratio(float(sql["debits_per_s"]), top),
            0.80,
            unit="%",
        ).to_dict(),
        Goal(
            "platform path end to end (best) vs atomic UPDATE alone",
            ratio(best, top),
            0.80,
            unit="%",
        ).to_dict(),
    ]
    result.notes += [
        f"squall_submit at the database: {writers} connections loop the platform's own "
        "submit statement (thread, queue bound, message, run, debit, ledger row; one "
        "transaction) for one user on a database migrated by the platform's migrations, a "
        f"fresh thread every {RUNS_PER_THREAD} debits; ledger held = one ledger row and one "
        "run per debit and balance = initial − debits. Active backends waiting on a lock "
        f"(the hot row): {fmt_percent(lock_share)} of samples. The control row gives "
        "every writer its own account: where it is no faster, the work of the submit "
        "(four inserted rows and their indexes), not the hot row, sets the rate.",
        "db_race rounds: every writer debits once per round on a fresh account (read, yield, "
        "the strategy's write + ledger row); debits / s = committed debits / time in rounds.",
        "platform path: each accepted user_message is debited (conditional UPDATE + ledger "
        "row + message + run, one transaction) before its ack; counted from the platform's "
        "ledger (runs_charged), with the simulated model made instant so runs drain.",
        "every event of the user's runs is delivered to each of the user's sockets, so with "
        "more sockets the platform spends more of its CPU on fan-out than on debits.",
    ]
    return result
