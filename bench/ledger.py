"""Benchmark 4: committed debits per second on one hot account.

Measurements against the same PostgreSQL, each with ``writers`` connections:

- the ceiling: every connection loops the atomic conditional
  ``UPDATE … SET balance = balance - 1 WHERE id = $1 AND balance >= 1 RETURNING balance``
  alone (autocommit, one prepared statement, one row) on one hot row;
- the platform's billing path at the database: ``writers`` concurrent callers submit for
  one user through the platform's own group commit (``squall.target.submit_batch``'s
  batcher with the platform's statements from ``squall.target.submit_sql`` on a pool of
  ``writers`` connections): one statement in flight for the user, the submits that
  arrive meanwhile together in the next (``squall_submit_many``); on a database of its
  own migrated by the platform's migrations, with random ids shaped like the platform's;
  afterwards the ledger is checked (one ledger row and one run per debit, balance =
  initial − debits, the threads' queued-run counters equal their queued runs);
- for comparison, every connection looping the one-message statement
  (``squall.target.submit_sql.SUBMIT_SQL``: thread, queue bound, message, queued run,
  debit and ledger row in one ``squall_submit`` call; autocommit, one prepared
  statement) for the same one user, checked likewise;
- the same with one account per writer (control: the submit without the hot row);
- each safe billing strategy of ``squall.scenarios.db_race`` (optimistic, row lock,
  atomic, serializable) on one hot account of its own: every connection loops the
  strategy's debit (``db_race.debit_once``: its read, its write and a ledger row),
  retrying a detected conflict until it commits; afterwards the account's balance and
  ledger rows are checked against the committed debits;
- the platform's own path end to end: one user with ``sockets`` sockets, each keeping
  one ``user_message`` in flight and sending the next as soon as the ack (the debit is
  committed before it) arrives; debits are counted by the platform's own ledger
  (``runs_charged`` from ``GET /v1/accounts/me``) and cross-checked against the acks.

The database paths are measured in alternating rounds (ceiling, group commit, submit,
control, the four strategies, ceiling, …) on connections opened once, so a change in the machine's
load hits all of them alike; each goal ratio is the median of the per-round ratios.
During every round ``pg_stat_activity`` is sampled for lock waits and, when the
PostgreSQL server is a local child process (the embedded one), the CPU time of the
client process and of the server's processes is recorded per debit.

Goal: the platform's billing path (group commit) at ≥ 80 % of the ceiling. The
WebSocket rows measure the whole agent-run machinery (scheduler, model, fan-out), not
billing, and are reported without a goal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import psutil  # type: ignore[import-untyped]

from bench.record import Result, command_line, cpu_seconds, log, measured
from bench.stack import platform_stack
from bench.table import Goal, fmt_count, fmt_percent, median, ratio
from squall.scenarios.db_race import (
    Outcome,
    Strategy,
    account_ledger,
    create_account,
    debit_once,
    ensure_schema,
)
from squall.scenarios.target import TargetInfo
from squall.services import create_database, drop_database
from squall.target.db import create_pool
from squall.target.migrations import migrate
from squall.target.settings import Settings
from squall.target.submit_batch import OK, Element
from squall.target.submit_sql import SUBMIT_SQL, Terms, billing_batcher

NAME = "ledger"
TITLE = "4. Ledger: committed debits / s on one hot account"
SAFE = (Strategy.OPTIMISTIC, Strategy.ROW_LOCK, Strategy.ATOMIC, Strategy.SERIALIZABLE)
STRATEGY_LABELS = {
    Strategy.OPTIMISTIC: "billing strategy: optimistic (version check, retry on conflict)",
    Strategy.ROW_LOCK: "billing strategy: row lock (SELECT … FOR UPDATE)",
    Strategy.ATOMIC: "billing strategy: atomic (conditional UPDATE) + ledger row",
    Strategy.SERIALIZABLE: "billing strategy: serializable (retry on serialization failure)",
}
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
#: How often ``pg_stat_activity`` is sampled for lock waits.
WAIT_SAMPLE_S = 0.05
#: Alternating rounds of the database paths (ceiling, group commit, submit, control).
ROUNDS = 5
QUICK_ROUNDS = 2
#: Credits of every account the database paths debit: never the limit.
INITIAL = 10**15


def _random_id() -> str:
    """A random 36-character id: what the database gets from the platform's uuid4 ids
    (random primary-key positions, same length), at a tenth of ``str(uuid4())``'s client
    CPU, which would otherwise count against the submit on the shared cores."""
    return f"{random.getrandbits(144):036x}"


def _server_cpu_s(postmaster: int | None) -> float | None:
    """CPU seconds of every child of ``postmaster`` (backends, WAL writer, …); None when
    the server is not a local process."""
    if postmaster is None:
        return None
    try:
        children = psutil.Process(postmaster).children()
    except psutil.NoSuchProcess:
        return None
    total = 0.0
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):  # exited meanwhile
            times = child.cpu_times()
            total += times.user + times.system
    return total


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


#: One writer's loop for one round: (connection or None, writer index, round, deadline) →
#: debits committed.
Loop = Callable[[Any, int, int, float], Awaitable[int]]


@dataclass
class DatabasePath:
    """One database path: its pool (``writers`` connections and a sampler), the loop each
    connection runs, and the figures of its rounds."""

    what: str
    pool: Any
    loop: Loop
    database: str
    #: Run after the last round: the path's own consistency checks, as JSON fields.
    check: Callable[[], Awaitable[dict[str, Any]]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    waits: dict[str, int] = field(default_factory=dict)
    #: False: the writers share the pool through the path's own code (the batcher), so the
    #: round holds only the sampler's connection and passes None to the loop.
    holds_connections: bool = True

    async def round(
        self, index: int, writers: int, seconds: float, postmaster: int | None
    ) -> dict[str, Any]:
        """Every writer loops for ``seconds`` (on a connection of its own unless the path
        shares its pool); record the round."""
        stop = asyncio.Event()
        waits: dict[str, int] = {}
        conns = [await self.pool.acquire() for _ in range(writers if self.holds_connections else 0)]
        conns.append(await self.pool.acquire())  # the sampler's
        try:
            sampler = asyncio.create_task(_sample_waits(conns[-1], self.database, stop, waits))
            client0, server0 = cpu_seconds(), _server_cpu_s(postmaster)
            began = time.monotonic()
            try:
                counts = await asyncio.gather(
                    *(
                        self.loop(
                            conns[i] if self.holds_connections else None,
                            i,
                            index,
                            began + seconds,
                        )
                        for i in range(writers)
                    )
                )
            finally:
                stop.set()
                await sampler
            elapsed = time.monotonic() - began
            client1, server1 = cpu_seconds(), _server_cpu_s(postmaster)
        finally:
            for conn in conns:
                await self.pool.release(conn)
        for kind, n in waits.items():
            self.waits[kind] = self.waits.get(kind, 0) + n
        figures = {
            "debits": sum(counts),
            "elapsed_s": elapsed,
            "debits_per_s": sum(counts) / elapsed,
            "client_cpu_s": client1 - client0,
            "server_cpu_s": None if server0 is None or server1 is None else server1 - server0,
            "lock_wait_share": waits.get("Lock", 0) / max(1, sum(waits.values())),
        }
        self.rounds.append(figures)
        return figures

    async def summary(self) -> dict[str, Any]:
        debits = sum(r["debits"] for r in self.rounds)
        elapsed = sum(r["elapsed_s"] for r in self.rounds)
        client = sum(r["client_cpu_s"] for r in self.rounds)
        servers = [r["server_cpu_s"] for r in self.rounds]
        server = None if None in servers else sum(servers)
        samples = sum(self.waits.values())
        return {
            "what": self.what,
            **self.extra,
            "debits": debits,
            "elapsed_s": elapsed,
            "debits_per_s": debits / elapsed if elapsed else 0.0,
            "client_cpu_us_per_debit": client / debits * 1e6 if debits else None,
            "server_cpu_us_per_debit": server / debits * 1e6
            if debits and server is not None
            else None,
            "cores_busy": (client + server) / elapsed if server is not None and elapsed else None,
            "wait_samples": self.waits,
            "lock_wait_share": (self.waits.get("Lock", 0) / samples) if samples else None,
            "rounds": self.rounds,
            **(await self.check() if self.check is not None else {}),
        }


def round_ratios(path: DatabasePath, ceiling: DatabasePath) -> list[float]:
    """The rate of ``path`` over the ceiling's rate in the same round, round by round."""
    return [
        p["debits_per_s"] / c["debits_per_s"]
        for p, c in zip(path.rounds, ceiling.rounds, strict=True)
        if c["debits_per_s"] > 0
    ]


async def _ceiling_path(database_url: str, writers: int) -> DatabasePath:
    pool = await asyncpg.create_pool(database_url, min_size=writers + 1, max_size=writers + 1)
    async with pool.acquire() as conn:
        await ensure_schema(conn)
        account = await create_account(conn, "bench-ceiling", INITIAL)
        database = await conn.fetchval("SELECT current_database()")

    async def loop(conn: Any, index: int, round_: int, end: float) -> int:
        done = 0
        while time.monotonic() < end:
            left = await conn.fetchval(
                "UPDATE test_accounts SET balance = balance - 1 "
                "WHERE id = $1 AND balance >= 1 RETURNING balance",
                account,
            )
            if left is not None:
                done += 1
        return done

    return DatabasePath("atomic UPDATE alone", pool, loop, database, extra={"writers": writers})


async def _strategy_path(ceiling: DatabasePath, writers: int, strategy: Strategy) -> DatabasePath:
    """``writers`` connections looping one billing strategy of ``squall.scenarios.db_race``
    on one hot account (the ceiling's database and pool, an account of its own): each
    debit is the strategy's read, write and ledger row, retried on a detected conflict
    until it commits; afterwards the account's ledger is checked."""
    async with ceiling.pool.acquire() as conn:
        account = await create_account(conn, f"bench-{strategy.value}", INITIAL)
    conflicts = [0]
    debits = [0]

    async def loop(conn: Any, index: int, round_: int, end: float) -> int:
        done = 0
        while time.monotonic() < end:
            # A conflict is retried with the same operation id: the next debit's is new.
            op_id = f"w{index}-r{round_}-{done}"
            outcome = await debit_once(conn, strategy, account, op_id, amount=1)
            if outcome is Outcome.CONFLICT:
                conflicts[0] += 1
                continue
            if outcome is Outcome.REFUSED:  # INITIAL is never spent: a broken account
                raise RuntimeError(f"{strategy.value}: account {account} refused a debit")
            done += 1
        debits[0] += done
        return done

    async def check() -> dict[str, Any]:
        async with ceiling.pool.acquire() as conn:
            ledger = await account_ledger(conn, account)
        return {
            "conflicts": conflicts[0],
            "conflicts_per_debit": conflicts[0] / debits[0] if debits[0] else None,
            "ledger_rows": ledger.rows,
            "balance_spent": INITIAL - ledger.balance,
            "ledger_held": ledger.holds(initial=INITIAL, committed=debits[0], amount=1),
        }

    return DatabasePath(
        f"billing strategy {strategy.value}",
        ceiling.pool,
        loop,
        ceiling.database,
        check=check,
        extra={"writers": writers, "accounts": 1, "strategy": strategy.value},
    )


async def _ledger_check(
    pool: Any, users: list[str], debits: int, refused: dict[str, int]
) -> dict[str, Any]:
    """One ledger row and one run per debit, balance = initial − debits, every thread's
    queued-run counter equal to its queued runs, nothing refused."""
    row = await pool.fetchrow(
        "SELECT sum(a.balance) AS balance, sum(a.initial) AS initial, "
        "(SELECT count(*) FROM ledger l WHERE l.user_id = ANY($1::text[])) AS rows, "
        "(SELECT count(*) FROM runs r WHERE r.user_id = ANY($1::text[])) AS runs, "
        "(SELECT count(*) FROM threads t WHERE t.queued <> (SELECT count(*) FROM runs r "
        "WHERE r.thread_id = t.id AND r.status = 'queued')) AS miscounted "
        "FROM accounts a WHERE a.user_id = ANY($1::text[])",
        sorted(set(users)),
    )
    found = row is not None and row["balance"] is not None
    spent = int(row["initial"]) - int(row["balance"]) if found else None
    rows = int(row["rows"]) if found else None
    runs = int(row["runs"]) if found else None
    return {
        "ledger_rows": rows,
        "runs": runs,
        "balance_spent": spent,
        "threads_miscounted": int(row["miscounted"]) if found else None,
        "ledger_held": found
        and spent == debits == rows == runs
        and int(row["miscounted"]) == 0
        and not refused,
    }


async def _batcher_path(database_url: str, writers: int) -> DatabasePath:
    """``writers`` concurrent callers submitting for one user through the platform's group
    commit: its batcher and statements on a pool of ``writers`` connections (plus the
    sampler's)."""
    defaults = Settings()
    pool = await create_pool(database_url, max_size=writers + 1)
    applied = await migrate(pool)
    database = await pool.fetchval("SELECT current_database()")
    user = "bench-hot-account"
    terms = Terms(defaults.run_cost, INITIAL, defaults.max_queued_per_thread)

    batcher = billing_batcher(pool, terms)
    refused: dict[str, int] = {}
    debits = [0]

    async def loop(conn: Any, index: int, round_: int, end: float) -> int:
        done = k = 0
        while time.monotonic() < end:
            thread = f"b{index}-r{round_}-t{k // RUNS_PER_THREAD}"
            k += 1
            element = Element(thread, _random_id(), _random_id(), "debit", f"c-{index}-{k}")
            outcome = await batcher.submit(user, element)
            if outcome.status == OK:
                done += 1
            else:
                refused[outcome.status] = refused.get(outcome.status, 0) + 1
        debits[0] += done
        return done

    async def check() -> dict[str, Any]:
        counts = batcher.counts
        statements = counts["submit_statements_total"]
        return {
            "statements": statements,
            "batches": counts["submit_batches_total"],
            "batch_fallbacks": counts["submit_batch_fallbacks_total"],
            "submits_per_statement": debits[0] / statements if statements else None,
            **await _ledger_check(pool, [user], debits[0], refused),
        }

    extra = {
        "writers": writers,
        "accounts": 1,
        "migrations_applied": applied,
        "runs_per_thread": RUNS_PER_THREAD,
        "max_batch": batcher.max_batch,
        "refused": refused,
    }
    return DatabasePath(
        "platform group commit at the database",
        pool,
        loop,
        database,
        check=check,
        extra=extra,
        holds_connections=False,
    )


async def _submit_path(database_url: str, writers: int, *, hot: bool) -> DatabasePath:
    """``writers`` connections looping the platform's submit statement; ``hot=False``
    gives every writer its own account (the same work without the hot row)."""
    defaults = Settings()
    pool = await create_pool(database_url, max_size=writers + 1)
    applied = await migrate(pool)
    database = await pool.fetchval("SELECT current_database()")
    users = [f"bench-hot-account{'' if hot else f'-{i}'}" for i in range(writers)]
    refused: dict[str, int] = {}
    debits = [0]

    async def loop(conn: Any, index: int, round_: int, end: float) -> int:
        done = k = 0
        while time.monotonic() < end:
            thread = f"w{index}-r{round_}-t{k // RUNS_PER_THREAD}"
            k += 1
            try:
                await conn.fetchval(
                    SUBMIT_SQL,
                    thread,
                    users[index],
                    _random_id(),
                    _random_id(),
                    "debit",
                    f"c-{index}-{round_}-{k}",
                    defaults.run_cost,
                    INITIAL,
                    defaults.max_queued_per_thread,
                )
            except asyncpg.RaiseError as exc:
                refused[str(exc.detail)] = refused.get(str(exc.detail), 0) + 1
            else:
                done += 1
        debits[0] += done
        return done

    async def check() -> dict[str, Any]:
        return await _ledger_check(pool, users, debits[0], refused)

    what = "platform squall_submit at the database" + (
        "" if hot else ", one account per writer (control)"
    )
    extra = {
        "writers": writers,
        "accounts": len(set(users)),
        "migrations_applied": applied,
        "runs_per_thread": RUNS_PER_THREAD,
        "refused": refused,
    }
    return DatabasePath(what, pool, loop, database, check=check, extra=extra)


async def _database_paths(
    ceiling_url: str,
    submit_urls: tuple[str, str, str],
    writers: int,
    rounds: int,
    seconds: float,
    postmaster: int | None,
) -> list[DatabasePath]:
    """The ceiling, the group commit, the hot-account submit, its control and each safe
    billing strategy, in alternating rounds."""
    ceiling = await _ceiling_path(ceiling_url, writers)
    paths = [
        ceiling,
        await _batcher_path(submit_urls[0], writers),
        await _submit_path(submit_urls[1], writers, hot=True),
        await _submit_path(submit_urls[2], writers, hot=False),
        *[await _strategy_path(ceiling, writers, strategy) for strategy in SAFE],
    ]
    try:
        for index in range(rounds):
            for path in paths:
                figures = await path.round(index, writers, seconds, postmaster)
                log(f"  round {index + 1}/{rounds} {path.what}: {figures['debits_per_s']:,.0f} /s")
        for path in paths:
            path.extra = await path.summary()
    finally:
        for pool in {id(path.pool): path.pool for path in paths}.values():
            await pool.close()
    return paths


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

    async with httpx.AsyncClient(headers=headers, timeout=10.0, trust_env=False) as http:

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


def _conflicts(paths: list[DatabasePath]) -> str:
    parts = []
    for path in paths:
        value = path.extra.get("conflicts_per_debit")
        parts.append(f"{path.extra['strategy']} {'?' if value is None else f'{value:.2f}'}")
    return ", ".join(parts)


def _per_statement(entry: dict[str, Any]) -> str:
    value = entry.get("submits_per_statement")
    return "?" if value is None else f"{value:.1f}"


def _cpu_cell(entry: dict[str, Any]) -> str:
    client, server = entry.get("client_cpu_us_per_debit"), entry.get("server_cpu_us_per_debit")
    if client is None:
        return "—"
    if server is None:
        return f"{client:,.0f} + ?"
    return f"{client:,.0f} + {server:,.0f}"


def run(quick: bool) -> Result:
    result = Result(NAME, TITLE, quick, command_line(NAME, quick))
    writers = 16
    duration = 4.0 if quick else 10.0
    rounds = QUICK_ROUNDS if quick else ROUNDS
    rows: list[list[str]] = []
    with platform_stack(workers=2, settings=FAST_MODEL) as stack:
        log(
            f"ledger: ceiling, platform group commit and submit (hot account) and control "
            f"(own accounts), {writers} writers, {rounds} alternating rounds of "
            f"{duration / rounds:g} s"
        )
        server = stack.endpoints.database_url
        submit_dbs = (
            create_database(server, "squall_bench_group_commit"),
            create_database(server, "squall_bench_submit"),
            create_database(server, "squall_bench_submit_control"),
        )
        database: dict[str, Any] = {"what": "database paths", "writers": writers}
        try:
            with measured(database):
                paths = asyncio.run(
                    _database_paths(
                        stack.database_url,
                        submit_dbs,
                        writers,
                        rounds,
                        duration / rounds,
                        stack.endpoints.postgres_pid,
                    )
                )
        finally:
            for url in submit_dbs:
                drop_database(server, url)
        ceiling, grouped, hot, control, *strategies = paths
        labels = {
            ceiling.what: "atomic UPDATE alone (ceiling)",
            grouped.what: "platform billing path: group commit at the database",
            hot.what: "platform: squall_submit alone at the database",
            control.what: "platform: squall_submit at the database "
            "(control: one account per writer)",
            **{path.what: STRATEGY_LABELS[Strategy(path.extra["strategy"])] for path in strategies},
        }
        top = float(ceiling.extra["debits_per_s"])
        shares: dict[str, float | None] = {}
        share_rounds: dict[str, list[float]] = {}
        for path in paths:
            entry = {**path.extra, "loadavg_before": database["loadavg_before"]}
            entry["loadavg_after"] = database["loadavg_after"]
            if path is not ceiling:
                per_round = round_ratios(path, ceiling)
                entry["ratio_per_round"] = per_round
                entry["ratio_median"] = median(per_round)
                shares[path.what] = entry["ratio_median"]
                share_rounds[path.what] = per_round
            result.measurements.append(entry)
            log(
                f"  {path.what}: {entry['debits_per_s']:,.0f} debits/s, CPU µs/debit client + "
                f"server {_cpu_cell(entry)}, lock waits {fmt_percent(entry['lock_wait_share'])}"
                + (f", ledger held={entry['ledger_held']}" if "ledger_held" in entry else "")
            )
            held = entry.get("ledger_held")
            rows.append(
                [
                    labels[path.what],
                    str(writers),
                    fmt_count(entry["debits_per_s"]),
                    "100 %" if path is ceiling else fmt_percent(shares[path.what]),
                    _cpu_cell(entry),
                    "—" if held is None else "held" if held else "VIOLATED",
                ]
            )
        best = 0.0
        for sockets in SOCKET_COUNTS:
            log(f"ledger: platform path, one user, {sockets} sockets, {duration:g} s")
            path_entry: dict[str, Any] = {"what": "platform WebSocket path"}
            with measured(path_entry):
                path_entry.update(asyncio.run(_platform_path(stack.target, sockets, duration)))
            result.measurements.append(path_entry)
            log(
                f"  {path_entry['debits_per_s']:,.0f} debits/s ({path_entry['acks']} acks, "
                f"{path_entry['errors']} errors {path_entry['error_codes']})"
            )
            best = max(best, float(path_entry["debits_per_s"]))
            consistent = path_entry["debits"] >= path_entry["acks"]
            rows.append(
                [
                    "platform: one user over the WebSocket API",
                    f"{sockets} socket{'s' if sockets > 1 else ''}",
                    fmt_count(path_entry["debits_per_s"]),
                    fmt_percent(ratio(path_entry["debits_per_s"], top)),
                    "—",
                    "acks ≤ ledger rows" if consistent else "ACKS > LEDGER ROWS",
                ]
            )
    rows.append(
        [
            "platform path end to end (best; not a goal: measures the agent-run machinery)",
            "—",
            fmt_count(best),
            fmt_percent(ratio(best, top)),
            "—",
            "—",
        ]
    )
    result.table = {
        "columns": [
            "path",
            "concurrency",
            "debits / s",
            "vs ceiling",
            "CPU µs / debit (client + server)",
            "ledger",
        ],
        "rows": rows,
    }
    result.goals += [
        Goal(
            "platform billing path at the database vs atomic UPDATE alone",
            shares[grouped.what],
            0.80,
            unit="%",
            rounds=tuple(share_rounds.get(grouped.what, ())),
        ).to_dict(),
    ]
    grouped_entry = grouped.extra
    hot_entry = hot.extra
    result.notes += [
        f"Database rows: {writers} writers per path; the ceiling, the group commit, the "
        f"submit, its control and the four billing strategies run in {rounds} alternating "
        f"rounds of {duration / rounds:g} s on "
        "connections opened once, and their 'vs ceiling' is the median of the per-round "
        "ratios (the goal's figure). The ceiling, the submit and its control: each "
        "connection loops one prepared statement in autocommit (one transaction per debit). "
        "The submit is the platform's one-message statement (SUBMIT_SQL: thread upsert with "
        "owner check, queue bound and queued-run count, message, queued run, conditional "
        "debit, ledger row; one transaction). The group commit is the platform's billing "
        f"path: {writers} concurrent callers of one user through the platform's batcher "
        "(squall.target.submit_batch) on a pool of as many connections: one statement in "
        "flight for the user, the submits that arrived meanwhile together in the next "
        "(squall_submit_many, at most "
        f"{grouped_entry.get('max_batch')}); "
        f"{grouped_entry.get('statements')} statements, "
        f"{_per_statement(grouped_entry)} submits per statement, "
        f"{grouped_entry.get('batch_fallbacks')} batches retried one by one. All for one "
        "user on a database migrated by the platform's migrations, random ids shaped like "
        f"the platform's, a fresh thread every {RUNS_PER_THREAD} debits per writer. Ledger "
        "held = one ledger row and one run per debit, balance = initial − debits and every "
        "thread's queued-run counter equal to its queued runs.",
        "CPU µs / debit: CPU time of the benchmark's client process and of all the "
        "PostgreSQL server's processes (when it is the embedded one; '?' otherwise) over the "
        "rounds, per committed debit. Active backends waiting on a lock: ceiling "
        f"{fmt_percent(ceiling.extra['lock_wait_share'])}, group commit "
        f"{fmt_percent(grouped_entry['lock_wait_share'])}, submit "
        f"{fmt_percent(hot_entry['lock_wait_share'])}, control "
        f"{fmt_percent(control.extra['lock_wait_share'])} of samples. The ceiling waits on "
        "its one row; the submit's cost is the work of its rows (see docs/runtime.md, "
        "'Cost of a submit'); group commit shares the per-statement part of it.",
        "Billing strategies (squall.scenarios.db_race.debit_once, on the ceiling's database, "
        "one hot account each): every connection loops the strategy's debit of 1 credit "
        "(its read, its write and a ledger row; nothing in between), retrying a detected "
        "conflict with the same operation id until it commits; conflicts per committed "
        f"debit: {_conflicts(strategies)}. Each holds the hot row's lock from its write to "
        "its commit across client round trips (the write, the ledger row and COMMIT are "
        "separate statements), so the account takes one debit per few round trips whatever "
        "the cores do; the platform's submit does its writes in one statement, the hot row "
        "last. Ledger held = the balance fell by exactly the committed debits, one ledger "
        "row each, no operation charged twice. The WebSocket "
        "rows are measured after the database rounds and compared with the ceiling's rate "
        "over all its rounds.",
        "platform path over the WebSocket API: each accepted user_message is debited (the "
        "billing path above) before its ack; counted from the platform's ledger "
        "(runs_charged), with the simulated model made instant so runs drain. It is not a "
        "goal row: besides billing it measures the agent-run machinery (scheduler, model, "
        "event fan-out) every accepted message starts.",
        "every event of the user's runs is delivered to each of the user's sockets, so with "
        "more sockets the platform spends more of its CPU on fan-out than on debits.",
    ]
    return result
