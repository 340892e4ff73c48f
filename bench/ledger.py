"""Benchmark 4: committed debits per second on one hot account.

Three measurements against the same PostgreSQL:

- the ceiling: ``writers`` connections looping the atomic conditional
  ``UPDATE … SET balance = balance - 1 WHERE id = $1 AND balance >= 1`` alone
  (autocommit) on one row;
- each safe billing strategy of ``squall.scenarios.db_race`` (optimistic,
  row lock, atomic, serializable): rounds of ``writers`` concurrent debits on a
  fresh account, each debit a read, a yield, and the strategy's write plus its
  ledger row, checked by the ledger checkers;
- the platform's own path: one user with ``sockets`` sockets, each keeping one
  ``user_message`` in flight and sending the next as soon as the ack (the debit
  is committed before it) arrives; debits are counted by the platform's own
  ledger (``runs_charged`` from ``GET /v1/accounts/me``) and cross-checked
  against the acks.

Goal: the platform's path at ≥ 80 % of the ceiling.
"""

from __future__ import annotations

import asyncio
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
    result.goals.append(
        Goal(
            "platform path (best) vs atomic UPDATE alone", ratio(best, top), 0.80, unit="%"
        ).to_dict()
    )
    result.notes += [
        "db_race rounds: every writer debits once per round on a fresh account (read, yield, "
        "the strategy's write + ledger row); debits / s = committed debits / time in rounds.",
        "platform path: each accepted user_message is debited (conditional UPDATE + ledger "
        "row + message + run, one transaction) before its ack; counted from the platform's "
        "ledger (runs_charged), with the simulated model made instant so runs drain.",
        "every event of the user's runs is delivered to each of the user's sockets, so with "
        "more sockets the platform spends more of its CPU on fan-out than on debits.",
    ]
    return result
