"""platform_races against the real reference platform: it passes, broken builds are caught.

Each platform runs as a child process on a fresh database of the session's PostgreSQL,
sharing the session's Redis under its own key prefix. The deliberately broken builds
(``SQUALL_FAULTS``) each get their own platform.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from fresh_databases import fresh_database
from squall.checks.history import EVENTS_CUT, EVENTS_UNRECORDED
from squall.checks.verdict import Verdict
from squall.config import PlatformConfig
from squall.scenarios.platform_clients import MAX_EVENTS, MAX_SOCKET_EVENTS
from squall.scenarios.platform_races import Part, PlatformRacesReport, run_platform_races
from squall.scenarios.target import TargetInfo
from squall.services import Endpoints
from squall.services.embedded import EmbeddedPostgres, EmbeddedValkey
from squall.services.platform import RunningPlatform, start_platform
from squall.store.history_log import HistoryLog, read_history
from squall.target.protocol import READY_LINE

pytestmark = pytest.mark.integration


class Platform:
    def __init__(self, running: RunningPlatform, database_url: str, redis_url: str) -> None:
        self.running = running
        self.database_url = database_url
        self.redis_url = redis_url

    async def run(self, tag: str, parts: tuple[Part, ...], **kwargs: object) -> PlatformRacesReport:
        target = TargetInfo(
            ws_url=self.running.ws_url,
            http_url=self.running.http_url,
            jwt_secret=self.running.jwt_secret,
        )
        return await run_platform_races(
            target,
            tag=tag,
            parts=parts,
            redis_url=self.redis_url,
            platform_database_url=self.database_url,
            timeout_s=30.0,
            **kwargs,  # type: ignore[arg-type]
        )


def _platform(
    endpoints: Endpoints, settings: Mapping[str, str], workers: int = 2
) -> Iterator[Platform]:
    with fresh_database(endpoints, "squall_races") as database:
        running = start_platform(
            database,
            endpoints.redis_url,
            workers=workers,
            settings={**PlatformConfig().env(), **settings},
        )
        try:
            yield Platform(running, database, endpoints.redis_url)
        finally:
            running.stop()


@pytest.fixture(scope="module")
def platform(endpoints: Endpoints) -> Iterator[Platform]:
    yield from _platform(endpoints, {})


def by_checker(report: PlatformRacesReport) -> dict[str, Verdict]:
    return {v.checker: v for v in report.verdicts}


async def test_the_reference_platform_passes_every_checker(
    platform: Platform, tmp_path: Path
) -> None:
    path = tmp_path / "platform_races.history.jsonl"
    with HistoryLog(path) as log:
        report = await platform.run("ok", tuple(Part), history=log)
    verdicts = by_checker(report)
    failed = {name: v.summary for name, v in verdicts.items() if v.valid is not True}
    assert failed == {}, failed
    assert set(verdicts) == {
        "ledger", "ledger.db", "ordering", "isolation", "locks", "runs", "delivery",
        "sessions", "fairness",
    }  # fmt: skip
    assert report.tally.violations == 0
    assert report.tally.unprevented == 0
    # 30 runs shared one thread: the platform serialised them (detected and prevented).
    assert report.tally.detected >= 29
    # same_thread, resume, users, takeover and postgres_disconnect (the restarts need
    # servers of their own: not applicable here).
    assert verdicts["runs"].counts["acked"] == 30 + 3 * 4 + 3 + 4 * 5 + 2 + 2 * (3 + 1)
    assert verdicts["ordering"].counts["resumes"] == 1
    assert verdicts["isolation"].counts["foreign_reads"] == 4
    assert verdicts["sessions"].counts == {
        "logins": 6, "replaced": 5, "survivors": 1, "violations": 0,
    }  # fmt: skip
    assert verdicts["locks"].counts["overlaps"] == 0
    metrics = report.metrics()
    assert metrics["violations"].to_dict()["value"] == 0
    # As the other race scenarios: a count, no rate (the parts run in bursts).
    assert metrics["operations"].to_dict()["per_second"] is None
    assert metrics["operations"].to_dict()["count"] == report.operations
    # Everything recorded is on disk, in order, for the checkers to be re-run.
    ops = read_history(path)
    assert len(ops) == report.operations
    assert [op.index for op in ops] == list(range(len(ops)))
    assert {"connect", "send", "run", "event", "resume", "http_read", "account", "closed"} <= {
        op.f for op in ops
    }
    # The history's bound on events per socket is far above what the busiest socket of a
    # well-behaved platform receives (docs/races.md, "Bounds"): nothing was cut.
    per_socket = collections.Counter(op.process for op in ops if op.f == "event")
    print(f"events per socket: busiest {max(per_socket.values())}, all {sum(per_socket.values())}")
    assert max(per_socket.values()) * 20 <= MAX_SOCKET_EVENTS
    assert sum(per_socket.values()) * 20 <= MAX_EVENTS
    assert not {EVENTS_CUT, EVENTS_UNRECORDED} & {op.f for op in ops}
    assert "events_unrecorded" not in verdicts["ordering"].counts


@dataclasses.dataclass
class Restartable:
    """A platform on a server of its own, the part that restarts it, and the restart."""

    platform: Platform
    part: Part
    service: str
    server: EmbeddedValkey | EmbeddedPostgres

    def logs(self) -> str:
        """The last lines of the platform's and the server's logs (for a failure's message)."""
        return (
            f"--- platform log ---\n{self.platform.running.process.log_tail(40)}\n"
            f"--- {self.service} log ---\n{self.server.process.log_tail(20)}"
        )


@pytest.fixture(params=[Part.REDIS_RESTART, Part.POSTGRES_RESTART])
def restartable(request: pytest.FixtureRequest, endpoints: Endpoints) -> Iterator[Restartable]:
    server: EmbeddedValkey | EmbeddedPostgres
    if request.param is Part.REDIS_RESTART:
        server, service = EmbeddedValkey.start(), "Redis"  # back empty, on its port
        own = dataclasses.replace(endpoints, redis_url=server.url)
    else:
        server, service = EmbeddedPostgres.start(), "PostgreSQL"  # same data and port
        own = dataclasses.replace(endpoints, database_url=server.url)
    try:
        for platform in _platform(own, {}):
            yield Restartable(platform, request.param, service, server)
    finally:
        server.stop()


def assert_rode_out(
    report: PlatformRacesReport, part: Part, done: str, logs: Callable[[], str]
) -> None:
    """The fault was done and every run still completed once, every invariant held."""
    what = report.parts[part.value]
    assert what.startswith(done), what
    assert "never completed" not in what, f"{what}\n{logs()}"
    failed = {v.checker: v.summary for v in report.verdicts if v.valid is False}
    assert failed == {}, f"{what}\n{logs()}"
    verdicts = by_checker(report)
    # 3 runs per socket streaming through the fault, then one more each.
    assert verdicts["runs"].counts == {"acked": 8, "completed": 8, "violations": 0}
    for name in ("ordering", "delivery", "locks", "ledger", "ledger.db"):
        assert verdicts[name].valid is True, verdicts[name].summary


async def test_a_restart_mid_run_loses_no_event_and_breaks_no_invariant(
    restartable: Restartable,
) -> None:
    part = restartable.part
    restart = {f"restart_{part.value.removesuffix('_restart')}": restartable.server.restart}
    report = await restartable.platform.run(part.value, (part,), **restart)
    done = f"restarted the platform's {restartable.service} ("
    assert_rode_out(report, part, done, restartable.logs)


async def test_terminated_database_connections_mid_run_break_no_invariant(
    platform: Platform,
) -> None:
    part = Part.POSTGRES_DISCONNECT
    report = await platform.run("disconnect", (part,))
    done = "terminated the platform's database connections ("
    assert_rode_out(report, part, done, lambda: platform.running.process.log_tail(40))
    assert "(0 connection(s))" not in report.parts[part.value]


@pytest.fixture
def crashable(endpoints: Endpoints) -> Iterator[Platform]:
    """A platform of the test's own (one of its workers is signalled). Each run waits 1 s
    for its first token, so a run is still executing when the part signals a worker, however
    late a loaded machine lets it act (with the suite's 20 ms the part could find the runs
    done and signal a worker that only served sockets)."""
    yield from _platform(endpoints, {"SQUALL_MODEL_TTFT_MS": "1000"})


async def signal_a_worker(
    platform: Platform, part: Part, done: str
) -> tuple[PlatformRacesReport, str, str]:
    """Run ``part`` alone, check that every invariant held and a new worker took the
    signalled one's place; return the report, the part's line and the platform's log."""
    running = platform.running
    report = await platform.run(part.value, (part,), platform_pid=running.pid)
    assert_rode_out(report, part, done, lambda: running.process.log_tail(40))
    what = report.parts[part.value]
    assert ", executing a run" in what, what  # and serving sockets, when one did
    assert "; replaced by pid " in what, what  # the part ends once a new worker serves
    return report, what, running.process.log_path.read_text()


async def test_a_worker_killed_mid_run_fails_only_its_runs_and_loses_no_event(
    crashable: Platform,
) -> None:
    done = "killed a platform worker (SIGKILL) (pid "
    report, what, log = await signal_a_worker(crashable, Part.WORKER_CRASH, done)
    # The runs the worker was executing ended failed and refunded (orphan recovery): the
    # runs checker let them, the ledger checkers (valid above) saw the refunds.
    assert "run(s) lost with the worker" in what, what
    assert "lost with their worker, ended failed" in by_checker(report)["runs"].summary
    assert READY_LINE in log  # start_platform returned once every worker served
    assert "was killed by SIGKILL; starting a new one" in log
    assert "recovered orphaned run" in log
    # Killed on purpose: listed, so squall run's note on dead workers leaves it out.
    (victim,) = report.signalled_workers
    assert f"worker pid {victim} was killed by SIGKILL" in log
    assert report.to_dict()["signalled_workers"] == [victim]


async def test_a_worker_stopped_mid_run_finishes_its_runs_and_loses_no_event(
    crashable: Platform,
) -> None:
    done = "stopped a platform worker (SIGTERM) (pid "
    _, what, log = await signal_a_worker(crashable, Part.WORKER_RESTART, done)
    assert "lost with the worker" not in what, what
    assert "stopped on SIGTERM; starting a new one" in log


async def test_without_a_server_to_restart_the_restart_parts_are_not_applicable(
    platform: Platform,
) -> None:
    report = await platform.run("no-restart", (Part.REDIS_RESTART, Part.POSTGRES_RESTART))
    assert report.parts["redis_restart"].startswith("not applicable: needs a Redis squall")
    assert report.parts["postgres_restart"].startswith("not applicable: needs a PostgreSQL squall")


async def test_against_an_external_target_the_disconnect_part_is_not_applicable(
    platform: Platform,
) -> None:
    target = TargetInfo(
        ws_url=platform.running.ws_url,
        http_url=platform.running.http_url,
        jwt_secret=platform.running.jwt_secret,
    )
    report = await run_platform_races(target, tag="ext-disc", parts=(Part.POSTGRES_DISCONNECT,))
    assert report.parts["postgres_disconnect"] == (
        "not applicable: needs the platform's own database (squall started the platform)"
    )


@pytest.fixture
def impatient_platform(endpoints: Endpoints) -> Iterator[tuple[Platform, EmbeddedPostgres]]:
    """A platform on a PostgreSQL of its own that does not wait for a lost connection."""
    server = EmbeddedPostgres.start()
    try:
        own = dataclasses.replace(endpoints, database_url=server.url)
        for platform in _platform(own, {"SQUALL_DATABASE_OUTAGE_WAIT_S": "0"}):
            yield platform, server
    finally:
        server.stop()


async def test_a_platform_that_does_not_wait_out_a_restart_is_caught_failing_runs(
    impatient_platform: tuple[Platform, EmbeddedPostgres],
) -> None:
    platform, server = impatient_platform
    report = await platform.run(
        "impatient", (Part.POSTGRES_RESTART,), restart_postgres=server.restart
    )
    runs = by_checker(report)["runs"]
    assert runs.valid is False, runs.summary
    assert {e.kind for e in runs.evidence} == {"not-completed"}, runs.summary
    assert "ended failed" in runs.evidence[0].message
    # The failed runs were refunded: the ledger still balances.
    for name in ("ledger", "ledger.db", "ordering", "delivery"):
        assert by_checker(report)[name].valid is True, by_checker(report)[name].summary


@pytest.fixture
def naive_platform(endpoints: Endpoints) -> Iterator[Platform]:
    yield from _platform(endpoints, {"SQUALL_FAULTS": "naive_billing"})


async def test_naive_billing_is_caught_losing_debits(naive_platform: Platform) -> None:
    report = await naive_platform.run("naive", (Part.SAME_THREAD,))
    verdicts = by_checker(report)
    for name in ("ledger", "ledger.db"):
        verdict = verdicts[name]
        assert verdict.valid is False, verdict.summary
        kinds = {e.kind for e in verdict.evidence}
        assert kinds == {"balance-too-high"}, verdict.summary
        details = verdict.evidence[0].details
        final, expected = details["final"], details["expected_max"]
        assert isinstance(final, int)
        assert isinstance(expected, int)
        assert final > expected
        assert "acknowledged debits were lost" in verdict.evidence[0].message
    for name in ("ordering", "isolation", "locks", "runs", "delivery"):
        assert verdicts[name].valid is True, verdicts[name].summary


@pytest.fixture
def unfenced_platform(endpoints: Endpoints) -> Iterator[Platform]:
    yield from _platform(
        endpoints,
        {
            "SQUALL_FAULTS": "no_fencing",
            "SQUALL_LOCK_TTL_MS": "300",
            "SQUALL_MODEL_TTFT_MS": "2000",
        },
    )


async def test_no_fencing_lets_a_superseded_run_write_and_is_caught(
    unfenced_platform: Platform,
) -> None:
    report = await unfenced_platform.run("unfenced", (Part.TAKEOVER,))
    assert "another worker recovered the run" in report.parts["takeover"]
    verdicts = by_checker(report)
    locks = verdicts["locks"]
    assert locks.valid is False
    holders = {
        (str(e.details["earlier"]["process"]), str(e.details["later"]["process"]))  # type: ignore[index, call-overload]
        for e in locks.evidence
    }
    stale_run = next(a for a, b in holders if b.startswith(a + "/finaliser@"))
    assert any(b == f"{stale_run}/finaliser@4" for a, b in holders)  # recovery wrote seq 4
    runs = verdicts["runs"]
    assert {e.kind for e in runs.evidence} == {"completed-twice", "events-after-completion"}
    assert all(e.details["run"] == stale_run for e in runs.evidence)
    # The stale writer reported a charge for a run the recovery refunded.
    mismatch = [e for e in verdicts["ledger.db"].evidence if e.kind == "charge-mismatch"]
    assert [e.details["run"] for e in mismatch] == [stale_run]
    assert mismatch[0].details["refunded"] is True
    for name in ("ordering", "isolation", "delivery"):
        assert verdicts[name].valid is True, verdicts[name].summary


@pytest.fixture
def fenced_platform(endpoints: Endpoints) -> Iterator[Platform]:
    yield from _platform(endpoints, {"SQUALL_LOCK_TTL_MS": "300", "SQUALL_MODEL_TTFT_MS": "2000"})


async def test_with_fencing_the_takeover_leaves_a_clean_log(fenced_platform: Platform) -> None:
    report = await fenced_platform.run("fenced", (Part.TAKEOVER,))
    assert "another worker recovered the run" in report.parts["takeover"]
    failed = {v.checker: v.summary for v in report.verdicts if v.valid is False}
    assert failed == {}
    assert by_checker(report)["runs"].counts == {"acked": 2, "completed": 2, "violations": 0}
    # The recovered run failed and was refunded; the follow-up completed.
    assert by_checker(report)["ledger.db"].valid is True


@pytest.fixture
def broadcasting_platform(endpoints: Endpoints) -> Iterator[Platform]:
    # One worker: the fault broadcasts to every socket of the worker, so all share it.
    yield from _platform(endpoints, {"SQUALL_FAULTS": "broadcast_events"}, workers=1)


async def test_broadcast_events_are_named_by_the_isolation_checker(
    broadcasting_platform: Platform,
) -> None:
    report = await broadcasting_platform.run("leaky", (Part.USERS,))
    verdicts = by_checker(report)
    isolation = verdicts["isolation"]
    assert isolation.valid is False
    assert isolation.counts["foreign_events"] > 0
    evidence = isolation.evidence[0]
    assert evidence.kind == "foreign-event"
    socket, user = str(evidence.details["socket"]), str(evidence.details["user"])
    thread, owner = str(evidence.details["thread"]), str(evidence.details["owner"])
    assert socket.startswith(f"leaky:{user}-")
    assert owner != user
    assert thread.startswith("leaky-thread-")
    assert evidence.ops[0].process == socket
    assert evidence.ops[0].f == "event"
    assert isolation.counts["foreign_reads"] == 4  # HTTP still answered 404
    # A leaked event is isolation's evidence, not a gap in the receiving socket's order.
    for name in ("ledger", "ledger.db", "locks", "runs", "delivery", "ordering"):
        assert verdicts[name].valid is True, verdicts[name].summary
