"""Concurrent balance updates against PostgreSQL, one locking strategy at a time.

Each round creates a fresh account in squall's own ``test_accounts`` table and
lets ``writers`` tasks debit it at once. Every update is ``subops`` steps:
read, ``subops − 2`` compute steps (each yields to the loop, so the writers
interleave), and the write. Each attempt is one ``debit`` operation in the
history: ``ok`` with the version it read and the version it wrote, or ``fail``
with the reason (a conflict to retry, insufficient funds, retries exhausted).
After the round the ledger checkers judge the history against the stored rows.

The strategies: ``optimistic`` (version column, retry on conflict),
``row_lock`` (``SELECT … FOR UPDATE``; contention is detected with ``NOWAIT``
first), ``atomic`` (one conditional ``UPDATE``), ``serializable`` (retry on
SQLSTATE 40001), and ``naive`` (read-modify-write under READ COMMITTED) which
must be *caught* losing updates: if a round does not catch it, the next round
raises contention (twice the writers and a pause between read and write, then
all writers read before any writes), up to ``max_escalations`` rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg

from squall.checks.history import HistoryRecorder, JsonValue, Op, OpType, pair_ops
from squall.checks.ledger import (
    LedgerRow,
    check_balance,
    check_unique_charges,
    check_version_chain,
)
from squall.checks.verdict import RaceTally, Verdict, combine
from squall.store.history_log import HistoryLog

SCHEMA = """
CREATE TABLE IF NOT EXISTS test_accounts (
    id BIGSERIAL PRIMARY KEY,
    label TEXT NOT NULL,
    balance BIGINT NOT NULL,
    version BIGINT NOT NULL DEFAULT 0,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS test_account_debits (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES test_accounts (id),
    op_id TEXT NOT NULL,
    amount BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS test_account_debits_account ON test_account_debits (account_id);
"""

MAX_WRITERS = 64
"""Upper bound on concurrent writers (each holds a connection), escalation included."""
#: The most writers a round starts with: escalation doubles them, up to MAX_WRITERS.
MAX_RACE_WRITERS = MAX_WRITERS // 2


class Strategy(enum.StrEnum):
    OPTIMISTIC = "optimistic"
    ROW_LOCK = "row_lock"
    ATOMIC = "atomic"
    SERIALIZABLE = "serializable"
    NAIVE = "naive"

    @property
    def safe(self) -> bool:
        """Whether the strategy claims to keep the ledger invariants under concurrency."""
        return self is not Strategy.NAIVE


ALL = tuple(Strategy)


class Contention(enum.IntEnum):
    """How hard a round pushes the writers together (naive rounds escalate)."""

    BASE = 0
    PAUSE = 1
    """A short sleep between read and write, so reads pile up."""
    BARRIER = 2
    """Every writer reads before any writer writes."""


class _Conflict(Exception):
    """An attempt lost a race the strategy detected; the writer retries."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Rejected(Exception):
    """An attempt refused on the ledger's own rules (insufficient funds); not retried."""


@dataclass(frozen=True, slots=True)
class _Round:
    strategy: Strategy
    number: int
    writers: int
    subops: int
    amount: int
    initial_balance: int
    contention: Contention
    max_retries: int
    attempt_timeout_s: float


@dataclass(frozen=True, slots=True)
class _Committed:
    read_version: int
    version: int
    balance: int
    contended: bool = False
    """Committed after waiting for a row lock another writer held."""


@dataclass
class _Counters:
    conflicts: int = 0
    retries: int = 0
    contended: int = 0


@dataclass(frozen=True, slots=True)
class RoundReport:
    """One round of one strategy."""

    number: int
    writers: int
    contention: Contention
    ops_ok: int
    ops_failed: int
    elapsed_s: float
    conflicts_detected: int
    retries: int
    lost_updates: int
    verdicts: tuple[Verdict, ...]

    @property
    def violations(self) -> int:
        return sum(v.violations for v in self.verdicts)

    def to_dict(self) -> dict[str, JsonValue]:
        return {
            "number": self.number,
            "writers": self.writers,
            "contention": self.contention.name.lower(),
            "ops_ok": self.ops_ok,
            "ops_failed": self.ops_failed,
            "elapsed_s": self.elapsed_s,
            "conflicts_detected": self.conflicts_detected,
            "retries": self.retries,
            "lost_updates": self.lost_updates,
            "violations": self.violations,
            "verdicts": [v.to_dict() for v in self.verdicts],
        }


@dataclass(frozen=True, slots=True)
class StrategyReport:
    """All rounds of one strategy, with the totals the table shows."""

    strategy: Strategy
    rounds: tuple[RoundReport, ...]

    @property
    def ops_ok(self) -> int:
        return sum(r.ops_ok for r in self.rounds)

    @property
    def elapsed_s(self) -> float:
        return sum(r.elapsed_s for r in self.rounds)

    @property
    def ops_per_s(self) -> float:
        return self.ops_ok / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def verdicts(self) -> tuple[Verdict, ...]:
        return tuple(v for r in self.rounds for v in r.verdicts)

    @property
    def lost_updates(self) -> int:
        return sum(r.lost_updates for r in self.rounds)

    @property
    def tally(self) -> RaceTally:
        """Detected conflicts count as prevented in rounds whose invariants all held."""
        detected = sum(r.conflicts_detected for r in self.rounds)
        prevented = sum(r.conflicts_detected for r in self.rounds if r.violations == 0)
        return RaceTally(detected, prevented, sum(r.violations for r in self.rounds))

    @property
    def caught(self) -> bool | None:
        """For ``naive``: whether the checkers caught it breaking an invariant."""
        return None if self.strategy.safe else self.tally.violations > 0

    @property
    def valid(self) -> bool:
        """Safe strategies must hold every invariant; ``naive`` must be caught."""
        return self.tally.violations == 0 if self.strategy.safe else bool(self.caught)

    def to_dict(self) -> dict[str, JsonValue]:
        return {
            "strategy": self.strategy.value,
            "ops_ok": self.ops_ok,
            "elapsed_s": self.elapsed_s,
            "ops_per_s": self.ops_per_s,
            "lost_updates": self.lost_updates,
            "caught": self.caught,
            "valid": self.valid,
            "verdict": combine(self.verdicts),
            "tally": self.tally.to_dict(),
            "retries": sum(r.retries for r in self.rounds),
            "rounds": [r.to_dict() for r in self.rounds],
        }


@dataclass(frozen=True, slots=True)
class DbRaceReport:
    """Every strategy's report; ``valid`` when safe ones held and naive was caught."""

    strategies: tuple[StrategyReport, ...]
    writers: int
    subops: int

    @property
    def valid(self) -> bool:
        return all(s.valid for s in self.strategies)

    @property
    def tally(self) -> RaceTally:
        """Races over the safe strategies (naive's violations are expected, not the system's)."""
        total = RaceTally()
        for s in self.strategies:
            if s.strategy.safe:
                total += s.tally
        return total

    def strategy(self, name: Strategy | str) -> StrategyReport:
        for s in self.strategies:
            if s.strategy == name:
                return s
        raise KeyError(
            f"strategy {name!r} was not run; ran {[s.strategy.value for s in self.strategies]}"
        )

    def to_dict(self) -> dict[str, JsonValue]:
        return {
            "scenario": "db_race",
            "writers": self.writers,
            "subops": self.subops,
            "valid": self.valid,
            "tally": self.tally.to_dict(),
            "strategies": [s.to_dict() for s in self.strategies],
        }


TABLE_COLUMNS = (
    "strategy",
    "ops/s",
    "ok",
    "conflicts",
    "retries",
    "prevented",
    "violations",
    "lost updates",
    "verdict",
)


def table_rows(report: DbRaceReport) -> list[tuple[str, ...]]:
    """One row of text per strategy, in :data:`TABLE_COLUMNS` order, for a terminal table."""
    rows: list[tuple[str, ...]] = []
    for s in report.strategies:
        tally = s.tally
        if s.strategy.safe:
            verdict = "pass" if s.valid else "FAIL"
        else:
            verdict = "caught" if s.caught else "NOT CAUGHT"
        rows.append(
            (
                s.strategy.value,
                f"{s.ops_per_s:.0f}",
                str(s.ops_ok),
                str(tally.detected),
                str(sum(r.retries for r in s.rounds)),
                str(tally.prevented),
                str(tally.violations),
                str(s.lost_updates),
                verdict,
            )
        )
    return rows


async def ensure_schema(conn: asyncpg.Connection) -> None:
    """Create squall's account tables if missing (serialised by an advisory lock)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('squall.test_accounts'))")
        await conn.execute(SCHEMA)


def check_params(
    *,
    writers: int,
    subops: int,
    rounds: int,
    max_escalations: int,
    strategies: object = ALL,
    naive_contention: object = Contention.BASE,
    **_others: object,
) -> None:
    """Raise ValueError naming a parameter of :func:`run_db_race` that is out of range (pure:
    the suite checks a configuration with it before anything runs).

    ``strategies`` and ``naive_contention`` come from a config file as plain TOML values;
    checked here, a misspelt strategy or a contention level by name is refused before the
    run instead of failing the scenario midway."""
    known = [str(s) for s in Strategy]
    if (
        isinstance(strategies, str)
        or not isinstance(strategies, Sequence)
        or not strategies
        or any(not isinstance(s, str) or s not in known for s in strategies)
    ):
        shown = (
            list(strategies)
            if isinstance(strategies, Sequence) and not isinstance(strategies, str)
            else strategies
        )
        raise ValueError(
            f"strategies={shown!r}: expected a non-empty list of strategy names, "
            f"from {', '.join(known)}"
        )
    levels = [int(c) for c in Contention]
    if (
        not isinstance(naive_contention, int)
        or isinstance(naive_contention, bool)
        or naive_contention not in levels
    ):
        raise ValueError(
            f"naive_contention={naive_contention!r}: expected 0 (base), 1 (a pause between "
            "read and write) or 2 (every writer reads before any writes)"
        )
    if not 2 <= writers <= MAX_RACE_WRITERS:
        raise ValueError(
            f"writers={writers}: need 2..{MAX_RACE_WRITERS} (a race needs two; escalation "
            f"doubles them up to {MAX_WRITERS} connections)"
        )
    if subops < 2:
        raise ValueError(f"subops={subops}: an update needs at least a read and a write")
    if rounds < 1 or max_escalations < 0:
        raise ValueError(f"rounds={rounds}, max_escalations={max_escalations}: need ≥1 and ≥0")


async def run_db_race(
    database_url: str,
    *,
    writers: int = 20,
    subops: int = 3,
    rounds: int = 1,
    strategies: Sequence[Strategy | str] = ALL,
    history: HistoryLog | None = None,
    amount: int = 10,
    initial_balance: int | None = None,
    max_escalations: int = 2,
    naive_contention: Contention = Contention.BASE,
    max_retries: int = 200,
    attempt_timeout_s: float = 10.0,
    clock: Callable[[], int] = time.monotonic_ns,
) -> DbRaceReport:
    """Run each strategy for ``rounds`` rounds of ``writers`` concurrent debits.

    ``initial_balance`` defaults to enough for every debit. A ``naive`` round
    that is not caught is followed by up to ``max_escalations`` rounds at
    higher contention; ``naive_contention`` is where naive rounds start. Every
    writer is bounded by ``max_retries`` attempts of at most
    ``attempt_timeout_s`` each.
    """
    chosen = [Strategy(s) for s in strategies]
    check_params(writers=writers, subops=subops, rounds=rounds, max_escalations=max_escalations)
    recorder = HistoryRecorder(clock=clock, sink=history.append if history else None)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=writers * 2)
    try:
        async with pool.acquire() as conn:
            await ensure_schema(conn)
        reports = []
        for strategy in chosen:
            done: list[RoundReport] = []
            for number in range(rounds + (0 if strategy.safe else max_escalations)):
                if not strategy.safe and (number >= rounds and any(r.violations for r in done)):
                    break
                level = _contention(strategy, number, rounds, naive_contention)
                config = _Round(
                    strategy,
                    number,
                    writers * (2 if level else 1),
                    subops,
                    amount,
                    initial_balance if initial_balance is not None else amount * writers * 4,
                    level,
                    max_retries,
                    attempt_timeout_s,
                )
                done.append(await _run_round(pool, recorder, config))
            reports.append(StrategyReport(strategy, tuple(done)))
    finally:
        await pool.close()
        if history is not None:
            history.flush()
    return DbRaceReport(tuple(reports), writers, subops)


def _contention(strategy: Strategy, number: int, rounds: int, start: Contention) -> Contention:
    """Safe strategies run at base contention; naive escalates one level per extra round."""
    if strategy.safe:
        return Contention.BASE
    return Contention(min(start + max(0, number - rounds + 1), Contention.BARRIER))


async def _run_round(pool: asyncpg.Pool, recorder: HistoryRecorder, config: _Round) -> RoundReport:
    async with pool.acquire() as conn:
        account = await create_account(
            conn, f"{config.strategy}/r{config.number}", config.initial_balance
        )
    start = len(recorder)
    counters = _Counters()
    barrier = asyncio.Barrier(config.writers) if config.contention is Contention.BARRIER else None
    attempt = _ATTEMPTS[config.strategy]
    began = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for w in range(config.writers):
            process = f"{config.strategy}/r{config.number}/w{w}"
            group.create_task(
                _writer(pool, recorder, config, account, process, attempt, counters, barrier)
            )
    elapsed = time.perf_counter() - began
    async with pool.acquire() as conn:
        final = await conn.fetchrow("SELECT balance FROM test_accounts WHERE id = $1", account)
        stored = await conn.fetch(
            "SELECT id, op_id, amount FROM test_account_debits WHERE account_id = $1", account
        )
    debits = pair_ops(recorder.since(start), fs={"debit"})
    rows = [LedgerRow(str(r["id"]), r["op_id"], r["amount"]) for r in stored]
    chain = check_version_chain(debits, initial_version=0)
    verdicts = (
        check_balance(initial=config.initial_balance, final=final["balance"], debits=debits),
        check_unique_charges(rows),
        chain,
    )
    return RoundReport(
        config.number,
        config.writers,
        config.contention,
        sum(1 for d in debits if d.outcome is OpType.OK),
        sum(1 for d in debits if d.outcome is not OpType.OK),
        elapsed,
        counters.conflicts + counters.contended,
        counters.retries,
        chain.counts.get("lost_updates", 0),
        verdicts,
    )


_Attempt = Callable[
    [asyncpg.Connection, int, int, str, Callable[[], Awaitable[None]]], Awaitable[_Committed]
]


async def _writer(
    pool: asyncpg.Pool,
    recorder: HistoryRecorder,
    config: _Round,
    account: int,
    process: str,
    attempt: _Attempt,
    counters: _Counters,
    barrier: asyncio.Barrier | None,
) -> None:
    """One writer's debit, retried on detected conflicts, every attempt recorded."""

    async def between_read_and_write() -> None:
        for _ in range(config.subops - 2):
            await asyncio.sleep(0)
        if config.contention is Contention.PAUSE:
            await asyncio.sleep(0.002)
        if barrier is not None:
            with contextlib.suppress(TimeoutError, asyncio.BrokenBarrierError):
                async with asyncio.timeout(config.attempt_timeout_s / 2):
                    await barrier.wait()

    for number in range(config.max_retries):
        op = recorder.invoke(
            process,
            "debit",
            {"account": account, "amount": config.amount, "op_id": process, "attempt": number},
        )
        if await _attempt_once(
            pool, recorder, op, config, attempt, counters, between_read_and_write
        ):
            return
        counters.retries += 1
        await asyncio.sleep(0)
    recorder.fail(
        recorder.invoke(process, "debit", {"account": account, "amount": config.amount}),
        {"reason": "retries-exhausted", "attempts": config.max_retries},
    )


async def _attempt_once(
    pool: asyncpg.Pool,
    recorder: HistoryRecorder,
    op: Op,
    config: _Round,
    attempt: _Attempt,
    counters: _Counters,
    pause: Callable[[], Awaitable[None]],
) -> bool:
    """Run one attempt, record its completion, and say whether the writer is done."""
    try:
        async with asyncio.timeout(config.attempt_timeout_s), pool.acquire() as conn:
            committed = await attempt(
                conn, config.amount, op.int_value("account"), op.str_value("op_id"), pause
            )
    except _Conflict as conflict:
        counters.conflicts += 1
        recorder.fail(op, {"reason": conflict.reason})
        return False
    except _Rejected as rejected:
        recorder.fail(op, {"reason": str(rejected)})
        return True
    except TimeoutError:
        recorder.info(op, {"reason": "timeout"})
        return True
    except (OSError, asyncpg.PostgresError) as exc:
        recorder.info(op, {"reason": f"error: {exc!r}"})  # outcome unknown; then fail the run
        raise
    counters.contended += committed.contended
    recorder.ok(
        op,
        {
            "read_version": committed.read_version,
            "version": committed.version,
            "balance": committed.balance,
            "contended": committed.contended,
        },
    )
    return True


_READ = "SELECT balance, version FROM test_accounts WHERE id = $1"
_DEBIT_ROW = "INSERT INTO test_account_debits (account_id, op_id, amount) VALUES ($1, $2, $3)"


def _funds(balance: int, amount: int) -> None:
    if balance < amount:
        raise _Rejected("insufficient-funds")


async def _optimistic(
    conn: asyncpg.Connection,
    amount: int,
    account: int,
    op_id: str,
    pause: Callable[[], Awaitable[None]],
) -> _Committed:
    row = await conn.fetchrow(_READ, account)
    await pause()
    _funds(row["balance"], amount)
    async with conn.transaction():
        version = await conn.fetchval(
            "UPDATE test_accounts SET balance = $1, version = version + 1, updated_at = now() "
            "WHERE id = $2 AND version = $3 RETURNING version",
            row["balance"] - amount,
            account,
            row["version"],
        )
        if version is None:
            raise _Conflict("version-conflict")
        await conn.execute(_DEBIT_ROW, account, op_id, amount)
    return _Committed(row["version"], version, row["balance"] - amount)


async def _row_lock(
    conn: asyncpg.Connection,
    amount: int,
    account: int,
    op_id: str,
    pause: Callable[[], Awaitable[None]],
) -> _Committed:
    contended = False
    async with conn.transaction():
        try:
            async with conn.transaction():
                row = await conn.fetchrow(_READ + " FOR UPDATE NOWAIT", account)
        except asyncpg.exceptions.LockNotAvailableError:
            contended = True
            row = await conn.fetchrow(_READ + " FOR UPDATE", account)
        await pause()
        _funds(row["balance"], amount)
        version = await conn.fetchval(
            "UPDATE test_accounts SET balance = $1, version = version + 1, updated_at = now() "
            "WHERE id = $2 RETURNING version",
            row["balance"] - amount,
            account,
        )
        await conn.execute(_DEBIT_ROW, account, op_id, amount)
    return _Committed(row["version"], version, row["balance"] - amount, contended)


async def _atomic(
    conn: asyncpg.Connection,
    amount: int,
    account: int,
    op_id: str,
    pause: Callable[[], Awaitable[None]],
) -> _Committed:
    await conn.fetchrow(_READ, account)
    await pause()
    async with conn.transaction():
        row = await conn.fetchrow(
            "UPDATE test_accounts SET balance = balance - $1, version = version + 1, "
            "updated_at = now() WHERE id = $2 AND balance >= $1 RETURNING version, balance",
            amount,
            account,
        )
        if row is None:
            raise _Rejected("insufficient-funds")
        await conn.execute(_DEBIT_ROW, account, op_id, amount)
    return _Committed(row["version"] - 1, row["version"], row["balance"])


async def _serializable(
    conn: asyncpg.Connection,
    amount: int,
    account: int,
    op_id: str,
    pause: Callable[[], Awaitable[None]],
) -> _Committed:
    try:
        async with conn.transaction(isolation="serializable"):
            row = await conn.fetchrow(_READ, account)
            await pause()
            _funds(row["balance"], amount)
            version = await conn.fetchval(
                "UPDATE test_accounts SET balance = $1, version = $2, updated_at = now() "
                "WHERE id = $3 RETURNING version",
                row["balance"] - amount,
                row["version"] + 1,
                account,
            )
            await conn.execute(_DEBIT_ROW, account, op_id, amount)
    except asyncpg.exceptions.SerializationError as exc:
        raise _Conflict("serialization-failure") from exc
    except asyncpg.exceptions.DeadlockDetectedError as exc:
        raise _Conflict("deadlock") from exc
    return _Committed(row["version"], version, row["balance"] - amount)


async def _naive(
    conn: asyncpg.Connection,
    amount: int,
    account: int,
    op_id: str,
    pause: Callable[[], Awaitable[None]],
) -> _Committed:
    row = await conn.fetchrow(_READ, account)
    await pause()
    _funds(row["balance"], amount)
    await conn.execute(
        "UPDATE test_accounts SET balance = $1, version = $2, updated_at = now() WHERE id = $3",
        row["balance"] - amount,
        row["version"] + 1,
        account,
    )
    await conn.execute(_DEBIT_ROW, account, op_id, amount)
    return _Committed(row["version"], row["version"] + 1, row["balance"] - amount)


_ATTEMPTS: dict[Strategy, _Attempt] = {
    Strategy.OPTIMISTIC: _optimistic,
    Strategy.ROW_LOCK: _row_lock,
    Strategy.ATOMIC: _atomic,
    Strategy.SERIALIZABLE: _serializable,
    Strategy.NAIVE: _naive,
}


class Outcome(enum.StrEnum):
    """How one debit attempt ended (:func:`debit_once`)."""

    COMMITTED = "committed"
    """The balance was debited and the debit's row written, in one transaction."""
    CONFLICT = "conflict"
    """The strategy detected a concurrent writer and wrote nothing; the caller retries."""
    REFUSED = "refused"
    """The balance is below the amount; nothing was written."""


async def create_account(conn: asyncpg.Connection, label: str, balance: int) -> int:
    """A new account in ``test_accounts`` holding ``balance``; returns its id."""
    account: int = await conn.fetchval(
        "INSERT INTO test_accounts (label, balance) VALUES ($1, $2) RETURNING id", label, balance
    )
    return account


async def _no_pause() -> None:
    return None


async def debit_once(
    conn: asyncpg.Connection,
    strategy: Strategy | str,
    account: int,
    op_id: str,
    *,
    amount: int = 10,
) -> Outcome:
    """One attempt of ``strategy``'s debit of ``amount`` from ``account``, with nothing
    between its read and its write (the rounds of :func:`run_db_race` yield there to
    provoke races; a throughput loop does not). The debit's row in
    ``test_account_debits`` carries ``op_id``. A loop that retries on ``CONFLICT`` with
    the same ``op_id`` charges each operation at most once with every safe strategy."""
    attempt = _ATTEMPTS[Strategy(strategy)]
    try:
        await attempt(conn, amount, account, op_id, _no_pause)
    except _Conflict:
        return Outcome.CONFLICT
    except _Rejected:
        return Outcome.REFUSED
    return Outcome.COMMITTED


@dataclass(frozen=True, slots=True)
class AccountLedger:
    """An account's balance and its debit rows, read together."""

    balance: int
    rows: int
    distinct_ops: int
    debited: int

    def holds(self, *, initial: int, committed: int, amount: int) -> bool:
        """``committed`` debits of ``amount`` and nothing else: the balance fell by
        exactly their sum, each has one row, and no operation was charged twice."""
        return (
            self.balance == initial - committed * amount
            and self.rows == self.distinct_ops == committed
            and self.debited == committed * amount
        )


async def account_ledger(conn: asyncpg.Connection, account: int) -> AccountLedger:
    """``account``'s balance and its rows in ``test_account_debits``, in one snapshot."""
    row = await conn.fetchrow(
        "SELECT a.balance, count(d.id) AS rows, count(DISTINCT d.op_id) AS ops, "
        "coalesce(sum(d.amount), 0) AS debited FROM test_accounts a "
        "LEFT JOIN test_account_debits d ON d.account_id = a.id WHERE a.id = $1 "
        "GROUP BY a.balance",
        account,
    )
    if row is None:
        raise LookupError(f"account {account} is not in test_accounts")
    return AccountLedger(
        int(row["balance"]), int(row["rows"]), int(row["ops"]), int(row["debited"])
    )
