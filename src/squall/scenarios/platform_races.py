"""``platform_races``: the reference platform's invariants under races, through its API.

Every client records what it did as a history (``platform_checks`` lists the records);
the checkers then prove each invariant on it or name the operations that break it.
The parts, each bounded in count and time, run against the target squall points at:

- ``same_thread``: one user, several sockets, many concurrent messages to ONE thread
  (runs must complete once each and never interleave) plus a private thread per socket
  (concurrent debits of one account); every socket must receive every event;
- ``resume``: a socket closes while its run streams; a new socket resumes from the last
  seq it saw (no gap, no duplicate, under the documented resume semantics);
- ``users``: users sharing nothing, two sockets each, equal demand: isolation (no
  foreign event; ``GET`` of another user's thread is 404) and fairness;
- ``takeover``: a run loses its thread lock mid-run (its key is deleted in the
  platform's Redis, as a failover or a stall past the TTL would) so that another worker
  recovers it; a follow-up run then shares the thread with the superseded writer. With
  fencing the stale writer's events never reach the log. Needs the platform's Redis;
- ``redis_restart`` / ``postgres_restart``: the platform's Redis (comes back empty) or
  PostgreSQL (same data) restarts while one user's runs stream; every run must still
  complete once, every event arrive in order, every debit stand. Need a server squall
  started (embedded), to restart it;
- ``postgres_disconnect``: the same, with every connection to the platform's database
  terminated instead. Needs the platform's database;
- ``worker_restart`` / ``worker_crash``: the same, with the platform worker executing one
  of the runs stopped (SIGTERM: it closes its sockets with 1001 and finishes its runs, so
  every run must complete) or killed (SIGKILL: the runs it held may end ``failed`` and
  refunded, by orphan recovery; every other must complete); its sockets reconnect and
  resume. Need a platform squall started;
- ``sessions``: concurrent logins of one user on a second platform instance under
  ``SQUALL_SESSION_POLICY=single_session`` (same database and Redis): exactly one
  socket survives, the others are closed with 4409. Needs the platform's database.

Then the ledger (``/v1/accounts/me`` vs Σ reported charges, and the platform's ledger
read through a read-only connection), ordering, isolation, locks, runs, delivery,
sessions and fairness checkers judge the history.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import os
import signal
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import psutil  # type: ignore[import-untyped]  # no stubs installed
import redis.asyncio as aioredis

from squall.checks.fairness import check_fairness
from squall.checks.history import HistoryRecorder, JsonValue, Op, json_int
from squall.checks.isolation import check_isolation, own_events
from squall.checks.ordering import check_ordering
from squall.checks.verdict import RaceTally, Verdict, verdict_from
from squall.engine.identity import Identity, IdentityFactory, JwtIdentities
from squall.metrics.histogram import LatencyHistogram
from squall.metrics.result import Counter, Gauge, Metric, Trend
from squall.scenarios import platform_checks as checks
from squall.scenarios.platform_checks import AccountRow, LogEvent, StoredCharge
from squall.scenarios.platform_clients import RecordingSocket, Runs, http_get
from squall.scenarios.target import TargetInfo, scaled
from squall.services import Restart
from squall.services.platform import RunningPlatform, start_platform
from squall.store.history_log import HistoryLog

NAME = "platform_races"
TABLE_COLUMNS = ("checker", "verdict", "evidence", "summary")


class Part(enum.StrEnum):
    SAME_THREAD = "same_thread"
    RESUME = "resume"
    USERS = "users"
    TAKEOVER = "takeover"
    REDIS_RESTART = "redis_restart"
    POSTGRES_RESTART = "postgres_restart"
    POSTGRES_DISCONNECT = "postgres_disconnect"
    WORKER_RESTART = "worker_restart"
    WORKER_CRASH = "worker_crash"
    SESSIONS = "sessions"


ALL_PARTS = tuple(Part)


@dataclass(frozen=True)
class Sizes:
    """How much each part does (``scale`` multiplies the counts)."""

    shared_sockets: int = 3
    shared_messages: int = 30
    private_messages: int = 4
    resume_messages: int = 3
    users: int = 4
    user_messages: int = 5
    restart_messages: int = 3
    logins: int = 6

    @classmethod
    def scaled(cls, scale: float) -> Sizes:
        base = cls()
        return cls(
            shared_sockets=max(2, scaled(base.shared_sockets, scale)),
            shared_messages=max(2, scaled(base.shared_messages, scale)),
            private_messages=scaled(base.private_messages, scale),
            resume_messages=max(2, scaled(base.resume_messages, scale)),
            users=max(2, scaled(base.users, scale)),
            user_messages=scaled(base.user_messages, scale),
            restart_messages=max(2, scaled(base.restart_messages, scale)),
            logins=max(2, scaled(base.logins, scale)),
        )


@dataclass(frozen=True)
class PlatformRacesReport:
    """Every checker's verdict, the race tally, and what each part did."""

    verdicts: tuple[Verdict, ...]
    operations: int
    tally: RaceTally
    response_time: LatencyHistogram
    parts: Mapping[str, str]
    elapsed_s: float
    #: The platform workers the parts stopped or killed on purpose (their deaths are no
    #: finding: ``squall run``'s note on dead workers leaves them out).
    signalled_workers: tuple[int, ...] = ()

    def verdict(self, checker: str) -> Verdict:
        """The verdict of ``checker`` (e.g. ``"ledger"``), or KeyError naming the known ones."""
        for verdict in self.verdicts:
            if verdict.checker == checker:
                return verdict
        raise KeyError(
            f"no verdict {checker!r}; this report has {', '.join(v.checker for v in self.verdicts)}"
        )

    @property
    def valid(self) -> bool:
        return all(v.valid is not False for v in self.verdicts)

    def notes(self) -> list[str]:
        lines = [f"{part}: {what}" for part, what in self.parts.items()]
        lines += [f"{v.checker}: {v.summary}" for v in self.verdicts]
        return lines

    def table_rows(self) -> list[tuple[str, ...]]:
        return [
            (v.checker, {True: "valid", False: "VIOLATED", None: "n/a"}[v.valid],
             str(len(v.evidence)), v.summary)
            for v in self.verdicts
        ]  # fmt: skip

    def metrics(self) -> dict[str, Metric]:
        """Race metrics, plus ``run_completion_time`` (send → ``agent_completed``).

        Not ``response_time``: runs queue behind each other on one thread by design, so
        the latency thresholds of the load scenarios do not apply to them.
        """
        unprevented, violations = float(self.tally.unprevented), float(self.tally.violations)
        found: dict[str, Metric] = {
            # No rate, as the other race scenarios: the parts run one after another, each
            # in bursts around its own setup and checks.
            "operations": Counter("operations", self.operations, None),
            "race_conditions_unprevented": Gauge(
                "race_conditions_unprevented", unprevented, unprevented, unprevented
            ),
            "violations": Gauge("violations", violations, violations, violations),
        }
        if self.response_time.count:
            found["run_completion_time"] = Trend.from_histogram(
                "run_completion_time", self.response_time
            )
        return found

    def to_dict(self) -> dict[str, JsonValue]:
        return {
            "scenario": NAME,
            "valid": self.valid,
            "operations": self.operations,
            "elapsed_s": self.elapsed_s,
            "parts": dict(self.parts),
            "signalled_workers": list[JsonValue](self.signalled_workers),
            "tally": self.tally.to_dict(),
            "verdicts": {v.checker: v.to_dict() for v in self.verdicts},
        }


@dataclass
class _State:
    """What the parts share: the recorder, the runs, who owns what, who must see what."""

    target: TargetInfo
    tag: str
    deadline_s: float
    recorder: HistoryRecorder
    runs: Runs
    identities: IdentityFactory
    sockets: list[RecordingSocket] = field(default_factory=list)
    thread_owner: dict[str, str] = field(default_factory=dict)
    viewers: dict[str, list[set[str]]] = field(default_factory=dict)
    users: dict[str, Identity] = field(default_factory=dict)
    fairness_users: set[str] = field(default_factory=set)
    parts: dict[str, str] = field(default_factory=dict)
    #: The platform workers the parts stopped or killed on purpose.
    signalled: list[int] = field(default_factory=list)
    session_ops: list[Op] = field(default_factory=list)
    messages: int = 0

    def identity(self) -> Identity:
        identity = self.identities(len(self.users))
        self.users[str(identity.user_id)] = identity
        return identity

    def socket(self, label: str, user: str) -> RecordingSocket:
        sock = RecordingSocket(f"{self.tag}:{label}", user, self.recorder, self.runs)
        self.sockets.append(sock)
        return sock

    def msg_id(self) -> str:
        self.messages += 1
        return f"{self.tag}-m{self.messages}"

    def deadline(self) -> float:
        return time.monotonic() + self.deadline_s


async def _connect_all(state: _State, sockets: Sequence[RecordingSocket]) -> None:
    results = await asyncio.gather(
        *(s.connect(state.target.ws_url, state.users[s.user], state.deadline_s) for s in sockets)
    )
    failed = [s.label for s, ok in zip(sockets, results, strict=True) if not ok]
    if failed:
        raise PlatformRacesError(
            f"{state.target.ws_url}: sockets {', '.join(failed)} got no hello within "
            f"{state.deadline_s:g} s; check that the target runs and accepts the JWT secret"
        )


async def _wait_acks(sockets: Iterable[RecordingSocket], deadline: float) -> None:
    for sock in sockets:
        await sock.wait_for(lambda s=sock: s.pending_sends() == 0, deadline)  # type: ignore[misc]


async def _finish(state: _State, sockets: Sequence[RecordingSocket], deadline: float) -> int:
    """Wait for every acked run of ``sockets``; return how many never completed."""
    await _wait_acks(sockets, deadline)
    runs = {run for s in sockets for run in s.acked.values()}
    return len(await state.runs.wait(runs, deadline))


async def _same_thread(state: _State, sizes: Sizes) -> None:
    user = str(state.identity().user_id)
    sockets = [state.socket(f"same-{i}", user) for i in range(sizes.shared_sockets)]
    await _connect_all(state, sockets)
    shared = f"{state.tag}-shared"
    threads = [shared] + [f"{state.tag}-own-{i}" for i in range(len(sockets))]
    for thread in threads:
        state.thread_owner[thread] = user
        state.viewers[thread] = [{s.label} for s in sockets]
    plans: list[list[str]] = [[] for _ in sockets]
    for i in range(sizes.shared_messages):
        plans[i % len(sockets)].append(shared)
    for i, plan in enumerate(plans):
        own = [f"{state.tag}-own-{i}"] * sizes.private_messages
        mixed = [t for pair in zip(plan, own, strict=False) for t in pair]
        plans[i] = mixed + plan[len(own) :] + own[len(plan) :]

    async def send_all(sock: RecordingSocket, plan: list[str]) -> None:
        for thread in plan:
            await sock.send(thread, f"race {thread} question {state.messages}", state.msg_id(),
                            expect="completed")  # fmt: skip

    await asyncio.gather(*(send_all(s, p) for s, p in zip(sockets, plans, strict=True)))
    missing = await _finish(state, sockets, state.deadline())
    state.parts[Part.SAME_THREAD] = (
        f"{len(sockets)} sockets of {user} sent {sizes.shared_messages} messages to one thread "
        f"and {sizes.private_messages} each to a private thread"
        + (f"; {missing} run(s) never completed" if missing else "")
    )


async def _resume(state: _State, sizes: Sizes) -> None:
    user = str(state.identity().user_id)
    first, second = state.socket("resume-a", user), state.socket("resume-b", user)
    thread = f"{state.tag}-resume"
    state.thread_owner[thread] = user
    state.viewers[thread] = [{first.label, second.label}]
    await _connect_all(state, [first])
    for _ in range(sizes.resume_messages):
        await first.send(thread, "resume after a dropped connection", state.msg_id(),
                         expect="completed")  # fmt: skip
    deadline = state.deadline()
    await _wait_acks([first], deadline)
    runs = set(first.acked.values())
    # Drop the connection while the runs stream: after the first run's tool ran.
    await first.wait_for(
        lambda: any("tool_completed" in first.seen_types.get(r, set()) for r in runs), deadline
    )
    last = first.last_seq.get(thread, 0)
    await first.close()
    await _connect_all(state, [second])
    await second.resume(thread, last)
    missing = len(await state.runs.wait(runs, deadline))
    await second.wait_for(lambda: not second.resuming(), deadline)
    state.parts[Part.RESUME] = (
        f"closed a socket at seq {last} of {len(runs)} streaming runs and resumed on a new one"
        + (f"; {missing} run(s) never completed" if missing else "")
    )


async def _users(state: _State, sizes: Sizes) -> None:
    users = [str(state.identity().user_id) for i in range(sizes.users)]
    pairs = [(state.socket(f"{u}-0", u), state.socket(f"{u}-1", u)) for u in users]
    await _connect_all(state, [s for pair in pairs for s in pair])
    state.fairness_users.update(users)
    threads = [f"{state.tag}-thread-{i}" for i in range(len(users))]
    for user, pair, thread in zip(users, pairs, threads, strict=True):
        state.thread_owner[thread] = user
        state.viewers[thread] = [{s.label} for s in pair]

    async def demand(sock: RecordingSocket, thread: str) -> None:
        for _ in range(sizes.user_messages):
            await sock.send(thread, f"isolated work of {sock.user}", state.msg_id(),
                            expect="completed")  # fmt: skip

    await asyncio.gather(*(demand(p[0], t) for p, t in zip(pairs, threads, strict=True)))
    sockets = [s for pair in pairs for s in pair]
    missing = await _finish(state, sockets, state.deadline())
    reads = 0
    for i, user in enumerate(users):
        headers = state.users[user].auth_headers()
        async with httpx.AsyncClient(
            base_url=state.target.http_url, headers=headers, trust_env=False
        ) as http:
            for thread in (threads[i], threads[(i + 1) % len(threads)]):
                await http_get(http, state.recorder, "http_read",
                               f"/v1/threads/{thread}/messages",
                               {"user": user, "thread": thread})  # fmt: skip
                reads += 1
    state.parts[Part.USERS] = (
        f"{len(users)} users × {sizes.user_messages} messages on 2 sockets each; {reads} HTTP reads"
        + (f"; {missing} run(s) never completed" if missing else "")
    )


async def _delete_lock(redis_url: str, thread: str, recorder: HistoryRecorder) -> int:
    """Delete ``thread``'s run lock in the platform's Redis, whatever its key prefix."""
    invoke = recorder.invoke("harness/redis", "lock_delete", {"thread": thread})
    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter(match=f"*:lock:thread:{thread}", count=500)]
        deleted = int(await client.delete(*keys)) if keys else 0
    finally:
        await client.aclose()
    recorder.ok(invoke, {"deleted": deleted})
    return deleted


async def _takeover(state: _State, redis_url: str) -> None:
    user = str(state.identity().user_id)
    sock = state.socket("takeover", user)
    thread = f"{state.tag}-takeover"
    state.thread_owner[thread] = user
    state.viewers[thread] = [{sock.label}]
    await _connect_all(state, [sock])
    deadline = state.deadline()
    await sock.send(thread, "a run whose lock is lost", state.msg_id(), expect="any")
    await _wait_acks([sock], deadline)
    first = set(sock.acked.values())
    await sock.wait_for(
        lambda: any("tool_completed" in sock.seen_types.get(r, set()) for r in first), deadline
    )
    deleted = await _delete_lock(redis_url, thread, state.recorder)
    await state.runs.wait(first, deadline)
    before = set(sock.acked.values())
    await sock.send(thread, "a run after the takeover", state.msg_id(), expect="completed")
    await _wait_acks([sock], deadline)
    missing = len(await state.runs.wait(set(sock.acked.values()) - before, deadline))
    ends = [
        op
        for op in state.recorder.ops
        if op.f == "event" and op.process == sock.label and op.get("type") == "agent_completed"
        and op.get("run") in first
    ]  # fmt: skip
    recovered = bool(ends) and ends[0].get("status") == "failed"
    state.parts[Part.TAKEOVER] = (
        f"deleted {deleted} lock key(s) mid-run; "
        + ("another worker recovered the run" if recovered
           else "the run finished before any recovery (lock TTL longer than the run)")
        + (f"; {missing} run(s) never completed" if missing else "")
    )  # fmt: skip


@dataclass(frozen=True)
class _Done:
    """How a fault went: for the part's line in the report, and the runs it may fail."""

    how: str
    #: Runs the fault took down with their worker: they may end ``failed`` (refunded).
    lost_runs: tuple[str, ...] = ()
    #: The platform worker the fault stopped or killed, if it signalled one.
    signalled: int | None = None


@dataclass(frozen=True)
class _Fault:
    """Something done to a service of the platform mid-run by a fault part."""

    part: Part
    #: What was done, for the part's line in the report ("restarted the platform's Redis").
    done: str
    #: Does it to the part's threads and sockets.
    act: Callable[[Sequence[str], Sequence[RecordingSocket]], Awaitable[_Done]]


async def _fault_mid_run(state: _State, sizes: Sizes, fault: _Fault) -> None:
    """Do ``fault`` while one user's runs stream to two sockets, then send one more message
    per socket; the checkers then judge their events, locks and ledger like any other
    part's. Every acked run must complete: a restart or a lost connection is a fault the
    platform has to ride out, not a reason to fail runs. Only a run whose worker died may
    end ``failed`` (and must then be refunded); a socket the fault closed is replaced by a
    new one that resumes each thread where the old one stopped."""
    name = fault.part.value
    service, action = name.split("_", 1)
    user = str(state.identity().user_id)
    sockets = [state.socket(f"{name}-{i}", user) for i in range(2)]
    await _connect_all(state, sockets)
    threads = [f"{state.tag}-{name}-{i}" for i in range(len(sockets))]
    for thread in threads:
        state.thread_owner[thread] = user
        state.viewers[thread] = [{s.label} for s in sockets]
    for sock, thread in zip(sockets, threads, strict=True):
        for _ in range(sizes.restart_messages):
            await sock.send(thread, f"an answer through a {service} {action}",
                            state.msg_id(), expect="completed")  # fmt: skip
    deadline = state.deadline()
    await _wait_acks(sockets, deadline)
    runs = {run for s in sockets for run in s.acked.values()}
    watcher = sockets[0]
    await watcher.wait_for(
        lambda: any("tool_completed" in watcher.seen_types.get(r, set()) for r in runs), deadline
    )
    invoke = state.recorder.invoke(f"harness/{service}", action, {})
    started = time.monotonic()
    done = await fault.act(threads, sockets)
    if done.signalled is not None:
        state.signalled.append(done.signalled)
    state.recorder.ok(
        invoke,
        {
            "how": done.how,
            "took_s": round(time.monotonic() - started, 3),
            "lost_runs": list[JsonValue](done.lost_runs),
        },
    )
    live = [await _replace_if_closed(state, sock, threads, deadline) for sock in sockets]
    for sock, thread in zip(live, threads, strict=True):
        await sock.send(thread, f"a question after the {service} {action}",
                        state.msg_id(), expect="completed")  # fmt: skip
    missing = await _finish(state, [*sockets, *live], deadline)
    for sock in live:
        await sock.wait_for(lambda s=sock: not s.resuming(), deadline)  # type: ignore[misc]
    replaced = sum(1 for old, new in zip(sockets, live, strict=True) if new is not old)
    state.parts[fault.part] = (
        f"{fault.done} ({done.how}) while {len(runs)} runs of {user} streamed to "
        f"{len(sockets)} sockets, then sent {len(sockets)} more"
        + (f"; {replaced} socket(s) closed by it reconnected and resumed" if replaced else "")
        + (f"; {len(done.lost_runs)} run(s) lost with the worker" if done.lost_runs else "")
        + (f"; {missing} run(s) never completed" if missing else "")
    )


async def _replace_if_closed(
    state: _State, sock: RecordingSocket, threads: Sequence[str], deadline: float
) -> RecordingSocket:
    """``sock`` if it is open, else a new socket of its user that resumed each of
    ``threads`` after the last seq ``sock`` received (the two share a viewer group)."""
    if not sock.closed_by_server.is_set():
        return sock
    again = state.socket(f"{sock.label.removeprefix(state.tag + ':')}-again", sock.user)
    await _connect_all(state, [again])
    for thread in threads:
        groups = state.viewers[thread]
        for i, group in enumerate(groups):
            if sock.label in group:
                groups[i] = {*group, again.label}
        await again.resume(thread, sock.last_seq.get(thread, 0))
        await again.wait_for(lambda: not again.resuming(), deadline)
    return again


def _restart(restart: Restart, after: str) -> Callable[..., Awaitable[_Done]]:
    async def act(*_part: object) -> _Done:
        started = time.monotonic()
        await restart()
        return _Done(f"{time.monotonic() - started:.1f} s down, {after} after")

    return act


def _disconnect(database_url: str) -> Callable[..., Awaitable[_Done]]:
    async def act(*_part: object) -> _Done:
        return _Done(f"{await terminate_connections(database_url)} connection(s)")

    return act


#: The part's runs marked running, oldest first, with the worker executing each.
_RUNNING = (
    "SELECT id, worker FROM runs WHERE thread_id = ANY($1::text[]) AND status = 'running' "
    "ORDER BY started_at"
)


async def signal_worker(
    database_url: str,
    platform_pid: int,
    http_url: str,
    threads: Sequence[str],
    sockets: Sequence[RecordingSocket],
    sig: signal.Signals = signal.SIGKILL,
) -> _Done:
    """Send ``sig`` to a platform worker executing a run of ``threads``, one serving some
    of ``sockets`` too if there is one (else the one serving ``sockets[0]``); wait for its
    sockets to close and, after SIGKILL, name the runs it left running (a worker stopped
    with SIGTERM finishes its runs: none is lost). Returns once the worker is gone and its
    replacement answers ``/healthz`` at ``http_url``, so the next part finds the platform
    whole. Only a child of ``platform_pid`` is ever signalled."""
    conn = await asyncpg.connect(database_url)
    try:
        running = await conn.fetch(_RUNNING, list(threads))
        workers = {child.pid for child in psutil.Process(platform_pid).children()}
        victim, why = choose_worker(
            workers, [r["worker"] for r in running], [_socket_worker(s) for s in sockets]
        )
        if victim is None:
            raise PlatformRacesError(
                f"no worker of the platform (pid {platform_pid}, workers {sorted(workers)}) "
                f"executes a run of {', '.join(threads)} or serves the part's first socket; "
                f"nothing was sent {sig.name}: is the target the platform squall started?"
            )
        ports = _tcp_ports(victim)
        started = time.monotonic()
        os.kill(victim, sig)
        dropped = [s for s in sockets if _socket_worker(s) == victim]
        for sock in dropped:
            await sock.wait_for(lambda s=sock: not s.open, time.monotonic() + 10)  # type: ignore[misc]
        lost: list[str] = []
        if sig == signal.SIGKILL:  # what it left running stays so: it is dead
            # A claim it had sent commits after the kill: read once its backends are gone.
            await backends_gone(conn, ports, within_s=10.0)
            rows = await conn.fetch(_RUNNING, list(threads))
            lost = [r["id"] for r in rows if _worker_pid(r["worker"]) == victim]
    finally:
        await conn.close()
    # A rolling restart's step ends when the worker is gone and its replacement serves.
    gone = await _exited(victim, within_s=60.0)
    new = await _new_worker(http_url, workers, within_s=60.0) if gone else None
    took = f"{time.monotonic() - started:.1f} s"
    after = (
        f"replaced by pid {new} after {took}" if new is not None
        else f"still running after {took}" if not gone
        else f"no new worker answered after {took}"
    )  # fmt: skip
    return _Done(
        f"pid {victim}, {why}, with {len(dropped)} of the part's sockets; {after}",
        tuple(sorted(map(str, lost))),
        signalled=victim,
    )


def _tcp_ports(pid: int) -> list[int]:
    """The local ports of process ``pid``'s TCP connections (its database ones among them)."""
    with contextlib.suppress(psutil.Error):
        return [c.laddr.port for c in psutil.Process(pid).net_connections(kind="tcp") if c.raddr]
    return []


async def backends_gone(conn: asyncpg.Connection, ports: Sequence[int], within_s: float) -> bool:
    """Wait until PostgreSQL serves no client on ``ports`` (the local ports of a process
    just killed), for up to ``within_s``; whether it does not. A statement the process had
    sent runs to its end, and commits, before its backend finds the client gone: a run it
    was claiming is ``running`` in its name only afterwards."""
    deadline = time.monotonic() + within_s
    while True:
        serving = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE client_port = ANY($1::int[])",
            list(ports),
        )
        if not serving:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)


async def _new_worker(http_url: str, old: Collection[int], within_s: float) -> int | None:
    """The pid of a worker not in ``old`` once one answers ``/healthz`` (a new connection
    each time: the kernel hands each to whichever worker accepts first), or None."""
    deadline = time.monotonic() + within_s
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(
        base_url=http_url, limits=limits, timeout=2.0, trust_env=False
    ) as http:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                worker = (await http.get("/healthz")).json().get("worker")
                if isinstance(worker, int) and worker not in old:
                    return worker
            await asyncio.sleep(0.05)
    return None


async def _exited(pid: int, within_s: float) -> bool:
    """Wait until process ``pid`` has exited (a zombie counts), for up to ``within_s``."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        await asyncio.sleep(0.1)
    return False


def choose_worker(
    workers: Collection[int], running_on: Sequence[str | None], serving: Sequence[int | None]
) -> tuple[int | None, str]:
    """Which of ``workers`` (pids) a worker part signals, and why (pure): the first one
    executing a run (``running_on``: the runs' ``worker`` column, oldest run first) that
    also serves one of the part's sockets (``serving``: each socket's worker pid), else the
    first one executing a run, else the one serving the first socket; None if that is not
    one of ``workers``."""
    executing = [pid for worker in running_on if (pid := _worker_pid(worker)) in workers]
    both = [pid for pid in executing if pid in serving]
    if both:
        return both[0], "executing a run and serving sockets"
    if executing:
        return executing[0], "executing a run"
    first = serving[0] if serving else None
    return (first if first in workers else None), "serving a socket"


def _worker_pid(worker: str | None) -> int | None:
    """The pid in a run's ``worker`` (``host:pid:token``)."""
    parts = (worker or "").split(":")
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def _socket_worker(sock: RecordingSocket) -> int | None:
    worker = (sock.hello or {}).get("worker")
    return worker if isinstance(worker, int) else None


async def terminate_connections(database_url: str) -> int:
    """Terminate every other connection to the database of ``database_url`` (what a
    failover, an administrator or an idle timeout does to a client); return how many."""
    conn = await asyncpg.connect(database_url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    finally:
        await conn.close()


def _faults(
    chosen: Collection[Part],
    platform_database_url: str | None,
    restart_redis: Restart | None,
    restart_postgres: Restart | None,
    platform_pid: int | None = None,
    http_url: str = "",
) -> list[_Fault | tuple[Part, str]]:
    """The fault parts chosen, in order, each as the fault to do or as (part, why it is not
    applicable)."""
    needs = "needs a {} squall started (embedded), to restart it"
    redis = None if restart_redis is None else _restart(restart_redis, "empty")
    postgres = None if restart_postgres is None else _restart(restart_postgres, "its data intact")
    database = platform_database_url
    disconnect = None if database is None else _disconnect(database)
    stop: Callable[..., Awaitable[_Done]] | None = None
    crash: Callable[..., Awaitable[_Done]] | None = None
    if database is not None and platform_pid is not None:
        signal_one = functools.partial(signal_worker, database, platform_pid, http_url)
        stop = functools.partial(signal_one, sig=signal.SIGTERM)
        crash = functools.partial(signal_one, sig=signal.SIGKILL)
    own_platform = "needs a platform squall started (its workers and database)"
    options = [
        (Part.REDIS_RESTART, redis, "restarted the platform's Redis", needs.format("Redis")),
        (Part.POSTGRES_RESTART, postgres, "restarted the platform's PostgreSQL",
         needs.format("PostgreSQL")),
        (Part.POSTGRES_DISCONNECT, disconnect, "terminated the platform's database connections",
         "needs the platform's own database (squall started the platform)"),
        (Part.WORKER_RESTART, stop, "stopped a platform worker (SIGTERM)", own_platform),
        (Part.WORKER_CRASH, crash, "killed a platform worker (SIGKILL)", own_platform),
    ]  # fmt: skip
    return [
        (part, f"not applicable: {why}") if act is None else _Fault(part, done, act)
        for part, act, done, why in options
        if part in chosen
    ]


async def _settle(sockets: Sequence[RecordingSocket], deadline: float) -> None:
    """Wait until at most one socket is still open, or ``deadline`` passes."""
    while True:
        still = [s for s in sockets if not s.closed_by_server.is_set()]
        left = deadline - time.monotonic()
        if len(still) <= 1 or left <= 0:
            return
        waits = [asyncio.ensure_future(s.closed_by_server.wait()) for s in still]
        try:
            await asyncio.wait(waits, timeout=left, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()


async def _sessions(state: _State, sizes: Sizes, database_url: str, redis_url: str) -> None:
    platform: RunningPlatform = await asyncio.to_thread(
        start_platform,
        database_url,
        redis_url,
        workers=2,
        settings={"SQUALL_SESSION_POLICY": "single_session"},
    )
    try:
        identities = JwtIdentities(platform.jwt_secret, prefix=f"{state.tag}-single")
        identity = identities(0)
        user = str(identity.user_id)
        start = len(state.recorder)
        sockets = [
            RecordingSocket(f"{state.tag}:login-{i}", user, state.recorder, state.runs)
            for i in range(sizes.logins)
        ]
        await asyncio.gather(*(s.connect(platform.ws_url, identity, 10.0) for s in sockets))
        await _settle(sockets, state.deadline())
        state.session_ops = list(state.recorder.since(start))
        survivors = sum(1 for s in sockets if not s.closed_by_server.is_set())
        state.parts[Part.SESSIONS] = (
            f"{sizes.logins} concurrent logins of {user} on a single_session instance; "
            f"{survivors} stayed open"
        )
        for sock in sockets:
            await sock.close()
    finally:
        await asyncio.to_thread(platform.stop)


class PlatformRacesError(RuntimeError):
    """The scenario could not run against the target; the message says why and what to check."""


@dataclass(frozen=True)
class _Stored:
    accounts: list[AccountRow]
    charges: list[StoredCharge]
    events: list[LogEvent]
    fences: dict[str, int]


async def read_platform_database(
    database_url: str, users: Collection[str], threads: Collection[str]
) -> _Stored:
    """The platform's accounts, ledger, events and fences, through a read-only connection."""
    conn = await asyncpg.connect(
        database_url, server_settings={"default_transaction_read_only": "on"}
    )
    try:
        async with conn.transaction(readonly=True, isolation="repeatable_read"):
            accounts = await conn.fetch(
                "SELECT a.user_id, a.balance, a.initial, "
                "(SELECT coalesce(sum(amount), 0) FROM credit_grants g "
                " WHERE g.user_id = a.user_id) AS granted "
                "FROM accounts a WHERE a.user_id = ANY($1::text[])",
                list(users),
            )
            ledger = await conn.fetch(
                "SELECT run_id, user_id, amount, refunded FROM ledger "
                "WHERE user_id = ANY($1::text[])",
                list(users),
            )
            events = await conn.fetch(
                "SELECT thread_id, seq, run_id, type, payload->>'status' AS status, "
                "(payload->>'charge')::bigint AS charge FROM events "
                "WHERE thread_id = ANY($1::text[]) ORDER BY thread_id, seq",
                list(threads),
            )
            fences = await conn.fetch(
                "SELECT id, fence FROM threads WHERE id = ANY($1::text[])", list(threads)
            )
    finally:
        await conn.close()
    return _Stored(
        accounts=[
            AccountRow(r["user_id"], int(r["balance"]), int(r["initial"]), int(r["granted"]))
            for r in accounts
        ],
        charges=[
            StoredCharge(r["run_id"], r["user_id"], int(r["amount"]), bool(r["refunded"]))
            for r in ledger
        ],
        events=[
            LogEvent(
                r["thread_id"],
                int(r["seq"]),
                r["run_id"],
                r["type"],
                r["status"],
                None if r["charge"] is None else int(r["charge"]),
            )
            for r in events
        ],
        fences={r["id"]: int(r["fence"]) for r in fences},
    )


def account_row(user: str, body: Any) -> AccountRow | None:
    """The account ``GET /v1/accounts/me`` answered; None when the answer's balance,
    initial credits or grants are no integer (null, a string, a bool): that user is then
    left out of the ledger check (counted there as ``accounts_unread``) rather than ending
    the judging (the history records the answer without the field)."""
    if not isinstance(body, dict):
        return None
    balance, initial, granted = (
        json_int(body.get(name, 0)) for name in ("balance", "initial_credits", "credits_granted")
    )
    if balance is None or initial is None or granted is None:
        return None
    return AccountRow(user, balance, initial, granted)


async def _accounts(state: _State) -> dict[str, AccountRow]:
    found: dict[str, AccountRow] = {}
    for user, identity in state.users.items():
        headers = identity.auth_headers()
        async with httpx.AsyncClient(
            base_url=state.target.http_url, headers=headers, trust_env=False
        ) as http:
            status, body = await http_get(
                http, state.recorder, "account", "/v1/accounts/me", {"user": user}
            )
        row = account_row(user, body) if status == 200 else None
        if row is not None:
            found[user] = row
    return found


def judge(
    ops: Sequence[Op],
    *,
    thread_owner: Mapping[str, str],
    socket_user: Mapping[str, str],
    viewers: Mapping[str, Sequence[Collection[str]]],
    accounts: Mapping[str, AccountRow],
    fairness_users: Collection[str],
    session_ops: Sequence[Op] = (),
    stored: _Stored | None = None,
) -> tuple[list[Verdict], RaceTally]:
    """Every checker on the recorded history (and the platform's tables when read)."""
    seen, divergent = checks.events_from_history(ops)
    log = stored.events if stored is not None else seen
    if stored is not None:
        divergent += checks.against_stored(ops, stored.events)
    charges = [e.charge for e in log if e.charge]
    run_cost = charges[0] if charges else 1
    ordering = checks.merge_verdicts(
        "ordering",
        [
            check_ordering(
                own_events(ops, thread_owner=thread_owner, socket_user=socket_user),
                first_seq=1,
                resume_restarts=True,
            ),
            verdict_from(
                "ordering",
                evidence=divergent,
                counts={},
                ok_summary="each seq names one event",
                applicable=bool(log),
            ),
        ],
        "every socket received every thread in seq order, across resumes",
    )
    fairness_runs = [op for op in ops if op.f == "run" and op.get("user") in set(fairness_users)]
    sessions = checks.check_single_session(session_ops)
    verdicts = [
        checks.check_ledger_api(ops, log, accounts, run_cost=run_cost),
        *([checks.check_ledger_db(ops, log, stored.accounts, stored.charges)] if stored else []),
        ordering,
        check_isolation(ops, thread_owner=thread_owner, socket_user=socket_user),
        checks.check_run_locks(log, stored.fences if stored is not None else None),
        checks.check_runs(ops, log),
        checks.check_delivery(ops, log, viewers),
        sessions,
        check_fairness(fairness_runs, f="run"),
    ]
    tally = checks.race_tally(verdicts, serialised=checks.serialised_runs(log), sessions=sessions)
    return verdicts, tally


def check_params(*, parts: Collection[Part | str], **_others: object) -> None:
    """Raise ValueError naming a parameter of :func:`run_platform_races` it cannot run with
    (pure: the suite checks a configuration with it before anything runs)."""
    known = [str(p) for p in Part]
    unknown = [str(p) for p in parts if str(p) not in known]
    if unknown:
        raise ValueError(
            f"parts={list(map(str, parts))}: unknown part(s) {', '.join(map(repr, unknown))}; "
            f"choose from {', '.join(known)}"
        )


async def run_platform_races(
    target: TargetInfo,
    *,
    tag: str,
    scale: float = 1.0,
    parts: Collection[Part | str] = ALL_PARTS,
    redis_url: str | None = None,
    platform_database_url: str | None = None,
    restart_redis: Restart | None = None,
    restart_postgres: Restart | None = None,
    platform_pid: int | None = None,
    history: HistoryLog | None = None,
    timeout_s: float = 30.0,
) -> PlatformRacesReport:
    """Run the selected parts against ``target`` and judge the history.

    ``redis_url`` and ``platform_database_url`` are the platform's own services, known
    when squall started it: ``takeover`` needs the Redis, ``sessions`` both, and the
    ledger/locks checks read the database (read-only) when it is given. ``redis_restart``
    needs ``restart_redis``, which stops that Redis and starts an empty one on its port;
    ``postgres_restart`` needs ``restart_postgres``, which stops that PostgreSQL and
    starts it again on the same data and port (squall's embedded servers can, see
    :class:`squall.services.Endpoints`); ``worker_restart`` and ``worker_crash`` need
    ``platform_pid``, the ``squall target serve`` process squall started, one of whose
    workers they stop or kill. Every
    wait is bounded by ``timeout_s`` per part.
    """
    started = time.monotonic()
    chosen = [Part(p) for p in parts]
    sizes = Sizes.scaled(scale)
    recorder = HistoryRecorder(sink=history.append if history is not None else None)
    state = _State(
        target=target,
        tag=tag,
        deadline_s=timeout_s,
        recorder=recorder,
        runs=Runs(recorder),
        identities=target.identities(f"{tag}-u"),
    )
    try:
        concurrent = []
        if Part.SAME_THREAD in chosen:
            concurrent.append(_same_thread(state, sizes))
        if Part.RESUME in chosen:
            concurrent.append(_resume(state, sizes))
        if Part.USERS in chosen:
            concurrent.append(_users(state, sizes))
        if Part.TAKEOVER in chosen:
            if redis_url is not None and platform_database_url is not None:
                concurrent.append(_takeover(state, redis_url))
            else:
                state.parts[Part.TAKEOVER] = "not applicable: needs the platform's own Redis"
        await asyncio.gather(*concurrent)
        # Alone, one after the other: a restart would disturb the other parts' own
        # expectations of the service.
        faults = _faults(
            chosen,
            platform_database_url,
            restart_redis,
            restart_postgres,
            platform_pid,
            target.http_url,
        )
        for fault in faults:
            if isinstance(fault, _Fault):
                await _fault_mid_run(state, sizes, fault)
            else:
                state.parts[fault[0]] = fault[1]
        accounts = await _accounts(state)
        stored = None
        if platform_database_url is not None:
            stored = await read_platform_database(
                platform_database_url, state.users, state.thread_owner
            )
        if Part.SESSIONS in chosen:
            if platform_database_url is not None and redis_url is not None:
                await _sessions(state, sizes, platform_database_url, redis_url)
            else:
                state.parts[Part.SESSIONS] = (
                    "not applicable: an external target's session policy cannot be changed"
                )
    finally:
        for sock in state.sockets:
            with contextlib.suppress(Exception):
                await sock.close()
        state.runs.expire()
        if history is not None:
            history.flush()
    socket_user = {s.label: s.user for s in state.sockets}
    verdicts, tally = judge(
        recorder.ops,
        thread_owner=state.thread_owner,
        socket_user=socket_user,
        viewers=state.viewers,
        accounts=accounts,
        fairness_users=state.fairness_users,
        session_ops=state.session_ops,
        stored=stored,
    )
    return PlatformRacesReport(
        verdicts=tuple(verdicts),
        operations=len(recorder),
        tally=tally,
        response_time=state.runs.response_time,
        parts={str(k): v for k, v in state.parts.items()},
        elapsed_s=time.monotonic() - started,
        signalled_workers=tuple(state.signalled),
    )
