"""squall's pytest plugin: high-load tests as short async test functions.

Registered through the ``pytest11`` entry point, so it is active wherever squall
is installed. It adds:

- markers ``integration``, ``real_services`` and ``high_load``;
- options ``--real-services`` (start or connect PostgreSQL, Redis and a target;
  without it tests marked ``real_services`` or ``high_load`` are skipped),
  ``--squall-scale`` (multiplies user counts), ``--squall-target`` (a running
  target instead of the reference platform), ``--squall-adapter``,
  ``--squall-jwt-secret``, ``--squall-jwt-secret-file``, ``--squall-results-dir`` and
  ``--squall-run-id``;
- fixtures ``real_services`` (session), ``squall``, ``user_context`` and
  ``thresholds`` (see docs/pytest.md).

Nothing starts unless a test asks for a fixture that needs it, and the heavy
imports happen inside the fixtures, so the plugin costs nothing to other test
suites. Every scenario a test runs is collected into one
:class:`~squall.suite.SuiteReport`, written at the end of the session to
``squall-results/<run id>/report.json`` like ``squall run``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import json
import re
import secrets
import time
from collections.abc import AsyncIterator, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from squall.adapters.chat import Chat
    from squall.config import Config
    from squall.engine import Behaviour, Identity, UserID
    from squall.engine.workload import Ramp
    from squall.metrics.thresholds import ThresholdOutcome
    from squall.scenarios.target import Signing, TargetInfo
    from squall.services import Endpoints
    from squall.suite import ScenarioOutcome, SuiteContext

MARKERS = {
    "integration": "needs real PostgreSQL / Redis / sockets on 127.0.0.1",
    "real_services": "needs real services: runs only with --real-services",
    "high_load": "drives many concurrent users against a target: runs only with --real-services",
}
#: Markers whose tests are skipped without ``--real-services``.
GATED_MARKERS = ("real_services", "high_load")
SKIP_REASON = (
    "needs real services (PostgreSQL, Redis and a target): run pytest with --real-services"
)


# -- options, markers, skipping ------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("squall", "squall high-load testing")
    group.addoption(
        "--real-services",
        action="store_true",
        default=False,
        help="Start (or connect by DATABASE_URL/REDIS_URL) PostgreSQL and Redis and a target; "
        "without it tests marked real_services or high_load are skipped.",
    )
    group.addoption(
        "--squall-scale",
        type=float,
        default=None,
        help="Multiply the user counts of squall tests (default: [run] scale, 1.0).",
    )
    group.addoption(
        "--squall-target",
        default=None,
        help="ws://HOST:PORT/... of a running target instead of starting the reference platform.",
    )
    group.addoption(
        "--squall-adapter",
        default=None,
        help="Protocol adapter of the target: squall (default), echo, or package.module:Class.",
    )
    group.addoption(
        "--squall-jwt-secret",
        default=None,
        help="HS256 secret the --squall-target verifies tokens with.",
    )
    group.addoption(
        "--squall-jwt-secret-file",
        default=None,
        type=Path,
        help="File holding that secret (instead of --squall-jwt-secret).",
    )
    group.addoption(
        "--squall-results-dir",
        default=None,
        help="Where report.json goes (default: [run] results_dir, squall-results).",
    )
    group.addoption(
        "--squall-run-id",
        default=None,
        help="Run id (folder name) of this session's report; writes one whenever a test ran.",
    )


def pytest_configure(config: pytest.Config) -> None:
    # Registering a marker twice (pyproject also declares ``integration``) is harmless.
    for name, description in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {description}")
    run_id = config.getoption("--squall-run-id")
    if run_id is not None and not _RUN_ID.fullmatch(run_id):
        # It names the report's folder inside the results folder, never a path out of it.
        raise pytest.UsageError(
            f"squall: --squall-run-id {run_id!r} is not a folder name; use letters, digits, "
            "'-', '_' and '.', starting with a letter or digit (squall's own look like "
            "20260101-120000-ab12)"
        )
    results = SessionResults(run_id=run_id, started_at=time.time())
    worker_input = getattr(config, "workerinput", None)  # an xdist worker's
    if worker_input is not None:
        results.shared_run_id = worker_input.get(_XDIST_RUN_ID)
        results.worker_id = str(worker_input.get("workerid", "worker"))
    config.stash[_RESULTS] = results
    config.pluginmanager.register(_SessionWatch(results), "squall-session-watch")
    if config.getoption("--real-services") or any(
        config.getoption(option) is not None for option in _CONFIG_OPTIONS
    ):
        config.stash[_CONFIG] = _checked_config(config)
    if results.run_id is not None:
        # A report will be written: its folder (from the configuration just checked) is
        # known before any test runs, and checked as `squall run` checks it.
        from squall.config import ConfigError
        from squall.report.files import create_results_dir

        results.results_dir = _results_dir(config)
        try:
            create_results_dir(results.results_dir)
        except ConfigError as exc:
            raise pytest.UsageError(f"squall: {exc}") from None


#: A ``--squall-run-id``: one folder name, no path.
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

#: Options that make the session read squall's configuration (besides ``--real-services``).
_CONFIG_OPTIONS = ("--squall-scale", "--squall-target", "--squall-adapter", "--squall-run-id")


def _checked_config(config: pytest.Config) -> Config:
    """squall's configuration, read before any test runs: a bad value in it or in an option
    is pytest's usage error (``ERROR: squall: ...``, exit 4), not an error in every test
    that uses it or a crash when the report is written at the end."""
    from squall.config import ConfigError
    from squall.loopback import NotLoopback, require_loopback
    from squall.monitor.targets import pids_problem

    # The adapter is loaded by the fixture, not here: its module may be the project's own,
    # importable only once pytest has put the test folders on the path.
    try:
        checked = _squall_config(config)
        if checked.target.url is not None:
            require_loopback(checked.target.url, "--squall-target ([target] url)")
        problem = pids_problem(checked.monitor.pids)
        if problem is not None:
            raise ConfigError(f"monitor.pids: {problem}")
    except (ConfigError, NotLoopback) as exc:
        raise pytest.UsageError(f"squall: {exc}") from None
    return checked


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--real-services"):
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if any(item.get_closest_marker(name) is not None for name in GATED_MARKERS):
            item.add_marker(skip)


# -- the session's results -----------------------------------------------------------------


@dataclass
class SessionResults:
    """What the session's squall tests measured, written as one report at the end."""

    run_id: str | None
    started_at: float
    scenarios: list[ScenarioOutcome] = field(default_factory=list)
    #: Why the services or the target could not be reached, if they could not.
    unreachable: str | None = None
    target: str | None = None
    #: The adapter the session's target is spoken to with (as ``squall run`` records it).
    adapter: str | None = None
    #: The settings of the platform the session started (None: it started none).
    platform: dict[str, str] | None = None
    results_dir: Path | None = None
    written: Path | None = None
    #: Why the report is not where it was asked for (then it is in the fallback folder,
    #: or, if ``written`` is None, nowhere).
    write_problem: str | None = None
    #: Whether a KeyboardInterrupt (Ctrl-C, or SIGTERM passed on as one) ended the session.
    interrupted: bool = False
    #: The nodes (test files, packages) pytest failed to collect.
    collection_errors: list[str] = field(default_factory=list)

    #: Under pytest-xdist, in a worker: the run id the controller chose for the session,
    #: taken when the worker first needs a folder (the platform's log, a race history).
    shared_run_id: str | None = None
    #: Under pytest-xdist, in a worker: its id (``gw0``), the subfolder its platform's log
    #: and race histories go to. None elsewhere, the controller included.
    worker_id: str | None = None
    #: The attempts of each test so far (pytest-rerunfailures runs a test again).
    attempts: dict[str, int] = field(default_factory=dict)
    #: In an xdist worker: the tests whose scenarios changed since the last hand-over.
    _changed: set[str] = field(default_factory=set)
    #: In the xdist controller: the scenarios each worker handed over, by (worker, test).
    _handed: dict[tuple[str, str], list[ScenarioOutcome]] = field(default_factory=dict)

    def folder(self) -> Path:
        """Where the session's files besides the report go (the platform's log, race
        histories): the report's folder, a worker's own subfolder under xdist. Fixes the
        run id if it was not."""
        from squall.report.files import new_run_id

        assert self.results_dir is not None
        self.run_id = self.run_id or self.shared_run_id or new_run_id()
        folder = self.results_dir / self.run_id
        return folder / self.worker_id if self.worker_id is not None else folder

    def begin(self, test: str) -> int:
        """A new attempt of ``test`` (its node id) begins: what an earlier one recorded is
        dropped, the test being judged by its last attempt, as pytest judges it. Returns
        the attempt's number, for :meth:`record`."""
        self.attempts[test] = attempt = self.attempts.get(test, 0) + 1
        self.scenarios = [s for s in self.scenarios if s.test != test]
        self._changed.add(test)
        return attempt

    def record(self, outcome: ScenarioOutcome, test: str, attempt: int) -> ScenarioOutcome:
        """Keep ``outcome`` of attempt ``attempt`` of ``test`` for the report; not when a
        later attempt has begun (the scenario of a timed-out attempt, cancelled only once
        its event loop closes)."""
        outcome = dataclasses.replace(outcome, test=test)
        if self.attempts.get(test) == attempt:
            self.scenarios.append(outcome)
            self._changed.add(test)
        return outcome

    def hand_over(self) -> str | None:
        """In an xdist worker: the scenarios of every test whose record changed since the
        last hand-over (each test's whole list: a rerun replaces it), for the controller
        (:meth:`take`). Sent with each test's last report, so a worker that crashes later
        loses none of it, and once more at the session's end (a scenario recorded after
        its test's report: a timed-out one, cancelled when a shared event loop closes)."""
        if not self._changed:
            return None
        tests = {
            test: [s.to_dict() for s in self.scenarios if s.test == test]
            for test in sorted(self._changed)
        }
        self._changed.clear()
        return json.dumps({"worker": self.worker_id, "tests": tests}, default=str)

    def take(self, handed: str) -> None:
        """In the xdist controller: a worker's :meth:`hand_over`, each test's scenarios in
        place of what that worker handed for it before (several workers may run one test:
        ``--dist each``)."""
        from squall.suite import ScenarioOutcome

        data = json.loads(handed)
        for test, scenarios in data["tests"].items():
            key = (str(data["worker"]), str(test))
            self._handed[key] = [ScenarioOutcome.from_dict(s) for s in scenarios]

    def every_scenario(self) -> list[ScenarioOutcome]:
        """This process's scenarios, then those the xdist workers handed over."""
        return [*self.scenarios, *(s for group in self._handed.values() for s in group)]

    def worker_output(self) -> str:
        """What an xdist worker hands the controller at its session's end."""
        return json.dumps(
            {
                "run_id": self.run_id,
                "unreachable": self.unreachable,
                "target": self.target,
                "adapter": self.adapter,
                "platform": self.platform,
                "interrupted": self.interrupted,
                "scenarios": self.hand_over(),
            },
            default=str,
        )

    def merge(self, worker_output: str) -> None:
        """Take in what a worker handed over at its session's end (:meth:`worker_output`)."""
        data = json.loads(worker_output)
        self.run_id = self.run_id or data["run_id"]
        self.unreachable = self.unreachable or data["unreachable"]
        self.target = self.target or data["target"]
        self.adapter = self.adapter or data.get("adapter")
        self.platform = self.platform or data["platform"]
        self.interrupted = self.interrupted or bool(data["interrupted"])
        if data["scenarios"] is not None:
            self.take(data["scenarios"])


_RESULTS = pytest.StashKey[SessionResults]()
_CONFIG = pytest.StashKey["Config"]()
#: Set on a test item whose body failed (its "call" phase).
_FAILED = pytest.StashKey[bool]()


class _SessionWatch:
    """Hooks that note in the session's results how it went (registered per session: these
    hooks are not given the config the results are kept in)."""

    def __init__(self, results: SessionResults) -> None:
        self.results = results

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        # pytest reports its own early stops here as well: Session.Interrupted (a
        # KeyboardInterrupt: "N errors during collection", --stepwise) and pytest.exit().
        # None of them is a Ctrl-C.
        error = excinfo.value
        if isinstance(error, KeyboardInterrupt) and not isinstance(
            error, pytest.Session.Interrupted
        ):
            self.results.interrupted = True

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.results.collection_errors.append(report.nodeid or str(report.fspath))

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # In the xdist controller: the scenarios a worker's tests ran, with a test's last
        # report; taken off it, so that no other plugin serialises them with the report.
        handed = getattr(report, _HANDED, None)
        if isinstance(handed, str) and self.results.worker_id is None:
            self.results.take(handed)
            delattr(report, _HANDED)


#: Options whose value is a secret, and what report.json shows for it.
_SECRET_OPTIONS = ("--squall-jwt-secret",)
REDACTED = "***"


def redacted_args(args: Sequence[object]) -> list[str]:
    """pytest's arguments as ``report.json`` records them: a secret's value (``--opt S`` or
    ``--opt=S``) is shown as :data:`REDACTED` (the file is kept as a CI artifact)."""
    shown: list[str] = []
    hide_next = False
    for arg in map(str, args):
        option, equals, _ = arg.partition("=")
        if hide_next:
            shown.append(REDACTED)
        elif option in _SECRET_OPTIONS and equals:
            shown.append(f"{option}={REDACTED}")
        else:
            shown.append(arg)
        hide_next = not hide_next and arg in _SECRET_OPTIONS  # "--opt": its value follows
    return shown


#: The key of the run id an xdist controller hands its workers, and of what they hand back
#: at their session's end; the attribute of a test's last report that carries its scenarios.
_XDIST_RUN_ID, _XDIST_OUTPUT, _HANDED = "squall_run_id", "squall_results", "squall_scenarios"


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist, in the controller: the workers share one run id, so that what they
    write (the platforms' logs, race histories) goes into the one report's folder."""
    results = node.config.stash[_RESULTS]
    if results.shared_run_id is None:
        from squall.report.files import new_run_id

        results.shared_run_id = results.run_id or new_run_id()
    node.workerinput[_XDIST_RUN_ID] = results.shared_run_id


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """pytest-xdist, in the controller: what a worker found besides its scenarios (which
    came with its tests' reports) joins the session's report."""
    output = getattr(node, "workeroutput", {}).get(_XDIST_OUTPUT)
    if output is not None:
        node.config.stash[_RESULTS].merge(output)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    results = session.config.stash.get(_RESULTS, None)
    worker_output = getattr(session.config, "workeroutput", None)
    if results is not None and worker_output is not None:
        worker_output[_XDIST_OUTPUT] = results.worker_output()
        return  # the controller writes the report
    scenarios = results.every_scenario() if results is not None else []
    if results is None or not (scenarios or results.run_id or results.unreachable):
        return
    if not scenarios and int(exitstatus) in (
        int(pytest.ExitCode.NO_TESTS_COLLECTED),
        int(pytest.ExitCode.USAGE_ERROR),  # e.g. a bad -m expression, found while collecting
    ):
        return  # nothing ran: no report, even with --squall-run-id
    from squall.report.files import fallback_folder, new_run_id, os_problem, write_report
    from squall.suite import SuiteReport

    options = session.config.option
    # The scale the tests ran at: --squall-scale, else the config file's [run] scale.
    loaded = session.config.stash.get(_CONFIG, None)
    report = SuiteReport(
        run_id=results.run_id or new_run_id(),
        started_at=results.started_at,
        scenarios=scenarios,
        config={
            "source": "pytest",
            "pytest_args": redacted_args(session.config.invocation_params.args),
            "pytest_exitstatus": int(exitstatus),
            "scale": loaded.run.scale if loaded is not None else options.squall_scale,
            # The settings of the platform the session started ([platform]), as squall run
            # records them, so compare can tell two sessions' platforms apart.
            "platform": results.platform,
            "target": results.target,
            "adapter": results.adapter,
            "unreachable": results.unreachable,
            "collection_errors": list(results.collection_errors),
        },
        finished_at=time.time(),
        interrupted=results.interrupted,
    )
    results_dir = results.results_dir or _results_dir(session.config)
    try:
        results.written = write_report(report, results_dir) / "report.json"
        return
    except OSError as exc:
        problem = os_problem(exc)
    fallback = fallback_folder(report.run_id)
    try:
        results.written = write_report(report, fallback.parent) / "report.json"
    except OSError as again:
        results.write_problem = (
            f"the report could not be written to {results_dir} ({problem}), nor to "
            f"{fallback.parent} ({os_problem(again)}); free space, or pass "
            "--squall-results-dir a folder you can write to"
        )
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
        return
    results.write_problem = (
        f"the report could not be written to {results_dir} ({problem}); it is in "
        f"{fallback} instead. Free space there, or pass --squall-results-dir a folder "
        "you can write to"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Note a test whose body failed, for the ``squall`` fixture's teardown; in an xdist
    worker, hand the scenarios the test ran to the controller with its last report."""
    report = yield
    if report.when == "call" and report.failed:
        item.stash[_FAILED] = True
    results = item.config.stash.get(_RESULTS, None)
    if report.when == "teardown" and results is not None and results.worker_id is not None:
        handed = results.hand_over()
        if handed is not None:
            setattr(report, _HANDED, handed)
    return report


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    results = config.stash.get(_RESULTS, None)
    if results is None:
        return
    if results.write_problem is not None:
        terminalreporter.write_line(f"squall: {results.write_problem}", red=True)
    if results.written is not None:
        terminalreporter.write_line(f"squall results: {results.written}")


def _results_dir(config: pytest.Config) -> Path:
    given = config.getoption("--squall-results-dir")
    if given:
        return Path(given)
    return _config_of(config).run.results_dir


def _config_of(config: pytest.Config) -> Config:
    """The configuration :func:`pytest_configure` checked (read now if it had no need to)."""
    found = config.stash.get(_CONFIG, None)
    if found is None:
        found = config.stash[_CONFIG] = _checked_config(config)
    return found


def _squall_config(config: pytest.Config) -> Config:
    """squall's configuration (squall.toml or [tool.squall]) with the plugin's options."""
    from squall.config import OptionOverride, load_config
    from squall.testrunner import TestRequest

    options = TestRequest(
        scale=config.getoption("--squall-scale"),
        target=config.getoption("--squall-target"),
        adapter=config.getoption("--squall-adapter"),
    )
    # squall test's --scale is this plugin's --squall-scale, and so on.
    overrides = [
        o.named(f"--squall-{o.option.removeprefix('--')}") if isinstance(o, OptionOverride) else o
        for o in options.config_overrides()
    ]
    return load_config(None, cwd=Path(config.rootpath), overrides=overrides)


# -- real_services ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RealServices:
    """The session's PostgreSQL, Redis and target."""

    database_url: str
    redis_url: str
    target: TargetInfo
    endpoints: Endpoints
    config: Config
    #: The database of the platform the session started (None for ``--squall-target``):
    #: ``platform_races`` reads it, as under ``squall run``.
    platform_database_url: str | None = None


@pytest.fixture(scope="session")
def real_services(request: pytest.FixtureRequest) -> Iterator[RealServices]:
    """PostgreSQL and Redis (embedded, or ``DATABASE_URL``/``REDIS_URL``) and a target.

    The target is ``--squall-target`` when given, else a reference platform
    started for the session on a fresh database.
    """
    config = request.config
    if not config.getoption("--real-services"):
        pytest.skip(SKIP_REASON)
    from squall.adapters.registry import UnknownAdapter
    from squall.adapters.registry import load as load_adapter
    from squall.config import ConfigError
    from squall.scenarios.target import (
        adapter_without_target,
        lacks_signing_key,
        missing_signing_key,
        signing,
    )
    from squall.services import ProcessStartError, ServiceUnavailable, services
    from squall.suite import TargetUnreachable

    results = config.stash[_RESULTS]
    squall_config = _config_of(config)
    try:
        adapter = load_adapter(squall_config.target.adapter)
        signer = signing(
            squall_config.target,
            config.getoption("--squall-jwt-secret"),
            config.getoption("--squall-jwt-secret-file"),
            option="--squall-jwt-secret",
        )
    except (ConfigError, UnknownAdapter) as exc:
        # The tests that need it fail with the message alone: the plugin's frames would
        # only hide it.
        pytest.fail(f"squall: {exc}", pytrace=False)
    no_target = adapter_without_target(squall_config.target, option="--squall-target")
    if no_target is not None:
        pytest.fail(f"squall: {no_target}", pytrace=False)
    if lacks_signing_key(squall_config.target, adapter.capabilities.authentication, signer):
        # As squall run: without it every socket would be refused, test after test.
        pytest.fail(f"squall: {missing_signing_key('--squall-')}", pytrace=False)
    results.results_dir = _results_dir(config)
    try:
        log_dir = _platform_log_dir(results, squall_config)
        with (
            services() as endpoints,
            _target(squall_config, signer, endpoints, log_dir) as started,
        ):
            target, platform_database_url = started
            results.target = target.ws_url
            results.adapter = target.adapter
            if platform_database_url is not None:
                results.platform = squall_config.platform.shown()
            yield RealServices(
                database_url=endpoints.database_url,
                redis_url=endpoints.redis_url,
                target=target,
                endpoints=endpoints,
                config=squall_config,
                platform_database_url=platform_database_url,
            )
    except (ServiceUnavailable, ProcessStartError, TargetUnreachable) as exc:
        results.unreachable = str(exc)
        pytest.fail(f"squall: {exc}", pytrace=False)


def _platform_log_dir(results: SessionResults, squall_config: Config) -> Path | None:
    """The session's results folder, where the platform it starts writes ``platform.log``
    beside the report (as under ``squall run``); it fixes the session's run id now. None
    when there is no platform to start, or the folder cannot be made (the log then goes to
    a temporary folder, removed when the platform stops)."""
    if squall_config.target.url is not None or results.results_dir is None:
        return None
    folder = results.folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder


@contextlib.contextmanager
def _target(
    squall_config: Config, signer: Signing, endpoints: Endpoints, log_dir: Path | None
) -> Iterator[tuple[Any, str | None]]:
    """The target, and the database of the platform started for it (None: ``--squall-target``);
    the platform's log goes to ``log_dir``."""
    from squall.runner import http_url_of
    from squall.scenarios.target import TargetInfo
    from squall.services import create_database, drop_database
    from squall.services.platform import start_platform
    from squall.suite import check_reachable

    wanted = squall_config.target
    if wanted.url is not None:
        check_reachable(wanted.url, option="--squall-target ([target] url)")
        given = TargetInfo(
            ws_url=wanted.url,
            http_url=http_url_of(wanted.url),
            jwt_secret=signer.key or "",
            jwt_algorithm=signer.algorithm,
            issuer=wanted.issuer,
            audience=wanted.audience,
            adapter=wanted.adapter,
        )
        yield given, None
        return
    database = create_database(endpoints.database_url, prefix="squall_plugin")
    try:
        platform = start_platform(
            database,
            endpoints.redis_url,
            workers=squall_config.run.workers,
            settings=squall_config.platform.env(),
            log_dir=log_dir,
        )
        try:
            started = TargetInfo(
                ws_url=platform.ws_url,
                http_url=platform.http_url,
                jwt_secret=platform.jwt_secret,
                pids=(platform.pid,),
            )
            yield started, database
        finally:
            platform.stop()
    finally:
        with contextlib.suppress(Exception):
            drop_database(endpoints.database_url, database)


def _tag(request: pytest.FixtureRequest) -> str:
    """A prefix unique to this test, so its users and threads never meet another test's."""
    name = re.sub(r"[^A-Za-z0-9]", "", request.node.name)[:20]
    return f"t{name}{secrets.token_hex(3)}"


# -- squall ---------------------------------------------------------------------------------


class SquallRunner:
    """The ``squall`` fixture: run behaviours and suite scenarios against the session's target."""

    def __init__(
        self, services: RealServices, results: SessionResults, tag: str, test: str = ""
    ) -> None:
        self.services = services
        self.results = results
        self.tag = tag
        #: The node id of the test this fixture serves, and which attempt of it this is.
        self.test = test
        self._attempt = results.begin(test)
        self._runs = 0
        self._calls: list[tuple[str, Coroutine[Any, Any, ScenarioOutcome]]] = []

    def __repr__(self) -> str:
        return f"SquallRunner(target={self.services.target.ws_url!r}, scale={self.scale})"

    @property
    def scale(self) -> float:
        """``--squall-scale`` (or ``[run] scale``): what :meth:`scaled` multiplies by."""
        return self.services.config.run.scale

    def scaled(self, count: int) -> int:
        """``count`` users at the session's scale, at least 1."""
        from squall.scenarios.target import scaled

        return scaled(count, self.scale)

    def _context(self, tag: str) -> SuiteContext:
        from squall.suite import SuiteContext

        folder = None
        if self.results.results_dir is not None and self.results.run_id is not None:
            folder = self.results.folder()
        return SuiteContext(
            target=self.services.target,
            database_url=self.services.database_url,
            redis_url=self.services.redis_url,
            services=self.services.endpoints,
            tag=tag,
            progress=False,
            results_folder=folder,
            platform_database_url=self.services.platform_database_url,
        )

    def _track(
        self, method: str, call: Coroutine[Any, Any, ScenarioOutcome]
    ) -> Coroutine[Any, Any, ScenarioOutcome]:
        self._calls.append((method, call))
        return call

    def never_awaited(self) -> list[str]:
        """The methods called but never awaited (so nothing ran), closing those calls."""
        missed = []
        for method, call in self._calls:
            if inspect.getcoroutinestate(call) == inspect.CORO_CREATED:
                call.close()  # no "never awaited" warning on top of the failure
                missed.append(method)
        self._calls.clear()
        return missed

    def _next_tag(self) -> str:
        self._runs += 1
        return f"{self.tag}r{self._runs}"

    def run(
        self,
        behaviour: Behaviour | str,
        *,
        users: int,
        ramp: Ramp | None = None,
        iterations: int | None = None,
        duration: float | None = None,
        params: Mapping[str, Any] | None = None,
        name: str | None = None,
        auth: bool = True,
    ) -> Coroutine[Any, Any, ScenarioOutcome]:
        """Run ``behaviour`` for ``users`` virtual users (a closed workload) under the monitor.

        Each user gets an identity (a token the target accepts when ``auth``)
        and ``session.params`` holds ``ws_url``, ``http_url``, ``adapter`` and
        ``params``. No threshold is judged here: pass the result to the
        ``thresholds`` fixture. Await it: a call never awaited fails the test.
        """
        return self._track(
            "run",
            self._run(behaviour, users, ramp, iterations, duration, params, name, auth),
        )

    async def _run(
        self,
        behaviour: Behaviour | str,
        users: int,
        ramp: Ramp | None,
        iterations: int | None,
        duration: float | None,
        params: Mapping[str, Any] | None,
        name: str | None,
        auth: bool,
    ) -> ScenarioOutcome:
        from squall.engine import Scenario, anonymous_identities, closed
        from squall.metrics.thresholds import ThresholdSet
        from squall.suite import run_load_scenario

        target = self.services.target
        tag = self._next_tag()
        scenario = Scenario(
            name=name or _scenario_name(behaviour),
            behaviour=behaviour,
            workload=closed(users, ramp, iterations=iterations, duration=duration),
            identities=target.identities(tag) if auth else anonymous_identities(tag),
            params={
                "ws_url": target.ws_url,
                "http_url": target.http_url,
                "adapter": target.adapter,
                **(params or {}),
            },
        )
        bare = dataclasses.replace(
            self.services.config, thresholds=ThresholdSet(), capacity=ThresholdSet(), scenarios={}
        )
        with self._recorded_if_cut(scenario.name):
            outcome = await run_load_scenario(bare, self._context(tag), scenario, capacity=False)
        outcome = self.results.record(outcome, self.test, self._attempt)
        _stop_if_interrupted(outcome)
        return outcome

    @contextlib.contextmanager
    def _recorded_if_cut(self, name: str) -> Iterator[None]:
        """A scenario the test was stopped in (pytest-timeout's failure raised inside the
        load, say) is recorded as ended by that error: it vanished from the report."""
        from squall.suite import scenario_error

        try:
            yield
        except Exception as exc:
            # The scenario's own failure (a behaviour that cannot be imported, say): its
            # error, as squall run records it.
            self._record_ended(name, scenario_error(exc))
            raise
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                # pytest-timeout's failure is raised in the event loop, which then cancels
                # the test's task.
                why = "the test ended during the load (a timeout, such as pytest-timeout's)"
            else:  # pytest.fail() or pytest.exit() from elsewhere, a KeyboardInterrupt
                why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self._record_ended(name, f"the test stopped it: {why}")
            raise

    def _record_ended(self, name: str, error: str) -> None:
        from squall.suite import ScenarioOutcome

        ended = ScenarioOutcome(name=name, metrics={}, outcomes=[], error=error)
        self.results.record(ended, self.test, self._attempt)

    def scenario(
        self, name: str, *, scale: float | None = None
    ) -> Coroutine[Any, Any, ScenarioOutcome]:
        """Run the suite's scenario ``name`` exactly as ``squall run`` does, thresholds judged.

        Await it: a call never awaited fails the test."""
        return self._track("scenario", self._scenario(name, scale))

    async def _scenario(self, name: str, scale: float | None) -> ScenarioOutcome:
        from squall.suite import not_run_here, select

        (entry,) = select([name])
        config = self.services.config
        if scale is not None:
            config = dataclasses.replace(config, run=dataclasses.replace(config.run, scale=scale))
        context = self._context(self._next_tag())
        left_out = not_run_here(entry, config, context)
        if left_out is not None:
            # squall run reports it not run; a test that asked for it fails, saying why.
            self.results.record(left_out, self.test, self._attempt)
            pytest.fail(f"squall: {left_out.notes[0]}", pytrace=False)
        with self._recorded_if_cut(name):
            outcome = await entry.run(config, context)
        outcome = self.results.record(outcome, self.test, self._attempt)
        _stop_if_interrupted(outcome)
        return outcome


def _stop_if_interrupted(outcome: ScenarioOutcome) -> None:
    """Ctrl-C (or SIGTERM) during a scenario stops the session after it, as in ``squall
    run``: the engine keeps what the scenario measured (in the results), then pytest stops
    as on any interruption instead of going on to the next test."""
    if outcome.stopped:
        raise KeyboardInterrupt(f"{outcome.name}: interrupted; its partial results are kept")


def _scenario_name(behaviour: object) -> str:
    if isinstance(behaviour, str):
        return behaviour.rpartition(":")[2]
    return str(getattr(behaviour, "__name__", "behaviour"))


@pytest.fixture
def squall(real_services: RealServices, request: pytest.FixtureRequest) -> Iterator[SquallRunner]:
    """Run a behaviour (``await squall.run(...)``) or a suite scenario (``squall.scenario``)."""
    results = request.config.stash[_RESULTS]
    runner = SquallRunner(real_services, results, _tag(request), request.node.nodeid)
    yield runner
    missed = runner.never_awaited()
    if missed and not request.node.stash.get(_FAILED, False):
        # Otherwise the test passes having run nothing (a sync test, a forgotten await).
        # A test that failed already is not told again: its own failure comes first.
        calls = ", ".join(f"squall.{method}()" for method in missed)
        pytest.fail(
            f"{calls} {'was' if len(missed) == 1 else 'were'} never awaited, so no load ran: "
            f"write 'await squall.{missed[0]}(...)' in an 'async def' test",
            pytrace=False,
        )


# -- user_context ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TestUser:
    """One authenticated user of the target: a typed id, a token, and thread names of its own."""

    __test__ = False  # not a test class, whatever pytest's name rule says

    identity: Identity

    @property
    def user_id(self) -> UserID:
        return self.identity.user_id

    @property
    def token(self) -> str | None:
        return self.identity.token

    def headers(self) -> dict[str, str]:
        """The ``Authorization`` header (empty for a target without authentication)."""
        return self.identity.auth_headers()

    def thread(self, label: str = "main") -> str:
        """A thread id owned by this user (``<user id>-<label>``)."""
        return f"{self.user_id}-{label}"


class UserContext:
    """The ``user_context`` fixture: new users, each isolated from every other."""

    def __init__(self, target: TargetInfo, tag: str) -> None:
        self.target = target
        self._identities = target.identities(tag)
        self._made = 0

    def __repr__(self) -> str:
        return f"UserContext(users={self._made}, target={self.target.ws_url!r})"

    def __call__(self) -> TestUser:
        """A new user."""
        user = TestUser(self._identities(self._made))
        self._made += 1
        return user

    def many(self, count: int) -> list[TestUser]:
        return [self() for _ in range(count)]

    @contextlib.asynccontextmanager
    async def chat(self, user: TestUser) -> AsyncIterator[Chat]:
        """A socket of ``user`` to the target, spoken through the target's adapter.

        Its measurements go to ``chat.session.recorder``.
        """
        from squall.adapters.chat import open_chat
        from squall.engine import Session
        from squall.metrics.recorder import Recorder

        params = {"ws_url": self.target.ws_url, "adapter": self.target.adapter}
        session = Session(user.identity, Recorder(), time.monotonic, params)
        try:
            async with open_chat(session) as chat:
                yield chat
        finally:
            await session.aclose()


@pytest.fixture
def user_context(real_services: RealServices, request: pytest.FixtureRequest) -> UserContext:
    """A factory of authenticated users unique to this test: ``alice = user_context()``."""
    return UserContext(real_services.target, _tag(request))


# -- thresholds -----------------------------------------------------------------------------


def diagnostic_table(outcomes: Sequence[ThresholdOutcome]) -> str:
    """Every outcome as one aligned row: scenario, metric, threshold, observed, result."""
    from squall.metrics.thresholds import OutcomeStatus

    label = {
        OutcomeStatus.PASSED: "pass",
        OutcomeStatus.FAILED: "FAIL",
        OutcomeStatus.NOT_APPLICABLE: "n/a",
    }
    rows = [("scenario", "metric", "threshold", "observed", "result")]
    for o in outcomes:
        _, _, rest = o.diagnostic.partition(" = ")
        observed = rest.partition(", limit")[0] if o.observed is not None else "—"
        rows.append((o.scenario, o.metric, o.expression, observed, label[o.status]))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    details = [o.diagnostic for o in outcomes if o.status is not OutcomeStatus.PASSED]
    return "\n".join([line.rstrip() for line in lines] + details)


class ThresholdAsserts:
    """The ``thresholds`` fixture: judge an outcome and fail with the whole table."""

    def check(
        self,
        outcome: ScenarioOutcome,
        spec: Mapping[str, Sequence[str] | str] | None = None,
        /,
        *,
        missing_ok: bool = False,
        **by_metric: Sequence[str] | str,
    ) -> list[ThresholdOutcome]:
        """Evaluate ``spec`` / ``metric=[expressions]`` on ``outcome``; fail on any failure.

        The outcomes are added to the scenario's (so the report shows them).
        With no expressions, the outcome's own thresholds are checked (those
        ``squall.scenario`` judged, where a metric the scenario does not record
        is not applicable, as in ``squall run``); with expressions, those and any
        the outcome failed already. An expression given here whose metric was not
        recorded fails, unless ``missing_ok``: a check the test asked for that did
        not run proves nothing.
        """
        from squall.metrics.thresholds import OutcomeStatus, evaluate, parse_thresholds

        __tracebackhide__ = True  # a failure points at the test's own call, not at this line
        texts: dict[str, list[str]] = {}
        for given in (spec or {}, by_metric):  # a metric named in both keeps both lists
            for metric, value in given.items():
                texts.setdefault(metric, []).extend([value] if isinstance(value, str) else value)
        if texts:
            # What the outcome failed already (nothing measured; squall.scenario's own
            # thresholds) fails here too: the test must not pass a run its report fails.
            failed = [o for o in outcome.outcomes if o.status is OutcomeStatus.FAILED]
            judged = evaluate(parse_thresholds(texts), outcome.metrics, outcome.name)
            outcome.outcomes.extend(judged)
            judged = failed + judged
        else:
            judged = list(outcome.outcomes)
        strict = bool(texts) and not missing_ok
        bad = {OutcomeStatus.FAILED} | ({OutcomeStatus.NOT_APPLICABLE} if strict else set())
        if any(o.status in bad for o in judged):
            raise AssertionError(
                f"squall thresholds failed for {outcome.name!r}:\n{diagnostic_table(judged)}"
                + "".join(f"\n{line}" for line in _error_lines(outcome))
            )
        return judged


def _error_lines(outcome: ScenarioOutcome) -> list[str]:
    """The run's commonest errors, one line each (``errors.connect 5: connection closed (code
    4401, ...)``), as the summary samples them: a rate at 0 % says nothing of why, a
    rejected token, say."""
    from squall.metrics.result import error_summaries_of
    from squall.report.summary import SAMPLED_ERROR_KINDS, first_error_samples

    samples = first_error_samples(outcome.result)
    commonest = sorted(error_summaries_of(outcome.result), key=lambda entry: -entry.count)
    return [
        f"errors.{entry.kind} {entry.count}"
        + (f": {samples[entry.kind]}" if entry.kind in samples else "")
        for entry in commonest[:SAMPLED_ERROR_KINDS]
    ]


@pytest.fixture
def thresholds() -> ThresholdAsserts:
    """``thresholds.check(result, response_time=["p(95) <= 8s"], success=["rate >= 0.9"])``."""
    return ThresholdAsserts()
