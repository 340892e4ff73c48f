"""What ``squall test`` does: run selected tests through pytest and judge them like ``squall run``.

pytest runs in a subprocess (a clean interpreter: test modules, event loops
and the plugin's session state never leak into the caller) with the squall
plugin's options and a run id chosen here. The plugin writes every scenario
the tests ran into ``<results dir>/<run id>/report.json``; this module reads
that report back, prints the same summary as ``squall run`` and returns the
same exit codes: 0 all held, 1 a test or threshold failed (or a test file could
not be collected), 2 usage, 3 the services or the target could not be reached,
130 interrupted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import re
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from squall.adapters.registry import UnknownAdapter
from squall.adapters.registry import load as load_adapter
from squall.config import ConfigError, load_config, option_overrides
from squall.interrupt import wait_for_child
from squall.loopback import NotLoopback, require_loopback
from squall.report.console import error_console, literal, output_console
from squall.report.files import create_results_dir, fallback_folder, new_run_id
from squall.report.publish import EXIT_INTERRUPTED
from squall.report.summary import print_scenario, print_summary
from squall.scenarios.target import (
    adapter_without_target,
    lacks_signing_key,
    missing_signing_key,
    signing,
)
from squall.suite import SuiteReport

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3

# pytest's exit codes (pytest.ExitCode), kept here so this module imports no pytest.
_PYTEST_OK, _PYTEST_FAILED, _PYTEST_INTERRUPTED = 0, 1, 2
_PYTEST_USAGE, _PYTEST_NO_TESTS = 4, 5
#: How to install what ``squall test`` runs.
PYTEST_INSTALL = "pip install 'squall[pytest]'"


@dataclass(frozen=True)
class TestRequest:
    """``squall test``'s arguments."""

    __test__ = False  # not a test class

    real_services: bool = False
    categories: tuple[str, ...] = ()
    markers: tuple[str, ...] = ()
    test_files: tuple[Path, ...] = ()
    scenarios: tuple[str, ...] = ()
    scale: float | None = None
    target: str | None = None
    adapter: str | None = None
    jwt_secret: str | None = None
    jwt_secret_file: Path | None = None
    results_dir: Path | None = None
    pytest_args: tuple[str, ...] = ()

    def config_overrides(self) -> list[str]:
        """The options that are squall configuration, as overrides of the config file (the
        plugin applies the same ones to the configuration its tests get)."""
        return option_overrides(
            numbers=(("run.scale", self.scale),),
            # An empty --squall-target / --squall-adapter means "not given".
            texts=(("target.url", self.target or None), ("target.adapter", self.adapter or None)),
        )


def marker_expression(categories: Sequence[str], markers: Sequence[str]) -> str | None:
    """``-m``: any of the categories, and every marker. ``None`` selects everything."""
    parts = []
    if categories:
        parts.append(" or ".join(categories))
    parts.extend(markers)
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return " and ".join(f"({p})" for p in parts)


def pytest_argv(request: TestRequest, *, run_id: str, results_dir: Path) -> list[str]:
    """The pytest command line (after ``python -m pytest``) for ``request``."""
    argv = [str(path) for path in request.test_files]
    expression = marker_expression(request.categories, request.markers)
    if expression is not None:
        argv += ["-m", expression]
    if request.scenarios:
        argv += ["-k", " or ".join(request.scenarios)]
    if request.real_services:
        argv.append("--real-services")
    for name, value in _plugin_options(request).items():
        if value is not None:
            argv.append(f"--squall-{name}={value}")
    # "--option=value", one word: pytest takes a separate word that names an existing
    # path (the results folder, a secret file) for a test path when it picks the rootdir,
    # whose squall.toml it then reads; a folder outside the project moved it away.
    argv += [f"--squall-run-id={run_id}", f"--squall-results-dir={results_dir}"]
    argv += list(request.pytest_args)
    return argv


@contextlib.contextmanager
def _secret_in_a_file(request: TestRequest) -> Iterator[TestRequest]:
    """``request`` with ``--jwt-secret`` handed to pytest in a file only this user reads,
    removed afterwards: on pytest's command line the secret was printed above its output
    (into CI logs) and shown to every user of the machine by ``ps``."""
    if request.jwt_secret is None:
        yield request
        return
    with tempfile.TemporaryDirectory(prefix="squall-test-") as folder:
        path = Path(folder) / "jwt-secret"
        path.touch(mode=0o600)
        path.write_text(request.jwt_secret)
        yield dataclasses.replace(request, jwt_secret=None, jwt_secret_file=path)


def exit_code(
    pytest_status: int, report: Mapping[str, Any] | None, *, stopped: bool = False
) -> int:
    """squall's exit code from pytest's, the report the plugin wrote and whether this process
    got Ctrl-C or SIGTERM while pytest ran (``stopped``)."""
    config = (report or {}).get("config") or {}
    if config.get("unreachable"):
        return EXIT_UNREACHABLE
    if pytest_status in (_PYTEST_USAGE, _PYTEST_NO_TESTS):
        return EXIT_USAGE
    if pytest_status != _PYTEST_OK and (stopped or (report or {}).get("interrupted")):
        return EXIT_INTERRUPTED
    if pytest_status != _PYTEST_OK:
        # Including pytest's own "interrupted" without a Ctrl-C: it stopped by itself, on a
        # test file that could not be collected, a --stepwise failure or a pytest.exit().
        return EXIT_FAILED
    verdict = (report or {}).get("verdict") or {}
    return EXIT_OK if verdict.get("ok", True) else EXIT_FAILED


def _option_names(request: TestRequest) -> dict[str, str]:
    """The pytest options squall set for ``request``, each with the ``squall test`` options
    it was made of; not those the arguments after ``--`` set again (pytest uses those)."""
    names = {}
    made_of = [
        name
        for name, given in (("--category", request.categories), ("--marker", request.markers))
        if given
    ]
    if made_of:
        names["-m"] = "/".join(made_of)
    if request.scenarios:
        names["-k"] = "--scenario"
    return {
        option: name
        for option, name in names.items()
        if not any(
            arg.startswith(option) and not arg.startswith("--") for arg in request.pytest_args
        )
    }


# pytest prints a usage error as "ERROR: <message>", red on a terminal.
_USAGE_LINE = re.compile(r"^(?:\x1b\[[0-9;]*m)*ERROR: ")


def _plugin_options(request: TestRequest) -> dict[str, object]:
    """``squall test``'s options the plugin takes as ``--squall-<name>``, by name: each is
    ``--<name>`` to ``squall test`` (None: not given)."""
    return {
        "scale": request.scale,
        "target": request.target,
        "adapter": request.adapter,
        "jwt-secret": request.jwt_secret,
        "jwt-secret-file": request.jwt_secret_file,
    }


def _plugin_option_names(request: TestRequest, *, every: bool = False) -> dict[str, str]:
    """The plugin's options squall set for ``request`` (``--squall-target``), each with the
    ``squall test`` option it was made of (``--target``); the results folder always; with
    ``every``, the options it did not set too."""
    given = {**_plugin_options(request), "results-dir": True}
    return {
        f"--squall-{name}": f"--{name}"
        for name, value in given.items()
        if every or value is not None
    }


def usage_error_translation(request: TestRequest) -> Callable[[str], str]:
    """A line of pytest's standard error as ``squall test``'s user should read it: a usage
    error that quotes an option squall set (``'-m'``) names the option typed (``--category``),
    and one of the plugin's options squall set (``--squall-target``) the one typed
    (``--target``)."""
    names = _option_names(request)
    plugin = plugin_option_translation(request)

    def translate(line: str) -> str:
        if _USAGE_LINE.match(line):
            for option, name in names.items():
                line = line.replace(f"'{option}'", name)
            line = plugin(line)
        return line

    return translate


def plugin_option_translation(request: TestRequest, *, every: bool = False) -> Callable[[str], str]:
    """A text of the plugin's (a usage error, why the target is unreachable) naming the
    plugin's options squall set (``--squall-target``) by the ``squall test`` options typed
    (``--target``); with ``every``, each of those options, set or not (a message of the
    plugin's about a setting squall.toml gave); one given after ``--`` keeps its name."""
    plugin = _plugin_option_names(request, every=every)
    typed_after = " ".join(request.pytest_args)
    plugin = {option: name for option, name in plugin.items() if option not in typed_after}
    if not plugin:
        return lambda text: text
    pattern = re.compile(
        "(?:" + "|".join(map(re.escape, sorted(plugin, key=len, reverse=True))) + r")(?![\w-])"
    )
    return lambda text: pattern.sub(lambda found: plugin[found[0]], text)


def _collection_errors(report: Mapping[str, Any] | None) -> list[str]:
    config = (report or {}).get("config") or {}
    return [str(node) for node in config.get("collection_errors") or []]


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def execute(request: TestRequest, console: Console | None = None) -> int:
    """Run the tests; print the summary; return the exit code."""
    console = console or output_console()
    err = error_console()
    if importlib.util.find_spec("pytest") is None:
        # Otherwise pytest's "No module named pytest" scrolled past, and squall test read
        # "ran no squall scenario (no report)", exit 1.
        err.print(
            "[red]squall test: pytest is not installed in this Python "
            f"({literal(sys.executable)}); install it with: "
            f"{literal(PYTEST_INSTALL)}[/red]",
            highlight=False,
        )
        return EXIT_USAGE
    missing = [str(p) for p in request.test_files if not p.exists()]
    if missing:
        err.print(
            f"[red]squall test: no such test file(s): {literal(', '.join(missing))}; "
            "pass existing paths to --test-file[/red]",
            highlight=False,
        )
        return EXIT_USAGE
    try:
        # The plugin reads the same configuration in the tests' process; checked here, a
        # bad value stops before pytest starts rather than in each test that uses it.
        config = load_config(None, cwd=Path.cwd(), overrides=request.config_overrides())
        adapter = load_adapter(config.target.adapter)
        # A secret or key file that cannot be read or cannot sign.
        signer = signing(config.target, request.jwt_secret, request.jwt_secret_file)
        if config.target.url is not None:
            require_loopback(config.target.url, "--target ([target] url)")
    except (ConfigError, UnknownAdapter, NotLoopback) as exc:
        err.print(f"[red]squall test: {literal(str(exc))}[/red]", highlight=False)
        return EXIT_USAGE
    no_target = adapter_without_target(config.target)
    if no_target is not None:
        err.print(f"[red]squall test: {literal(no_target)}[/red]", highlight=False)
        return EXIT_USAGE
    if request.real_services and lacks_signing_key(
        config.target, adapter.capabilities.authentication, signer
    ):
        # Otherwise every test using the services fails on it, and squall test exits 1.
        err.print(f"[red]squall test: {literal(missing_signing_key())}[/red]", highlight=False)
        return EXIT_USAGE
    results_dir = request.results_dir or config.run.results_dir
    try:
        create_results_dir(results_dir)
    except ConfigError as exc:
        err.print(f"[red]squall test: {literal(str(exc))}[/red]", highlight=False)
        return EXIT_USAGE
    run_id = new_run_id()
    with _secret_in_a_file(request) as request_to_run:
        argv = pytest_argv(request_to_run, run_id=run_id, results_dir=results_dir)
        console.print(f"squall test: pytest {' '.join(argv)}", highlight=False, markup=False)
        child = wait_for_child(
            [sys.executable, "-m", "pytest", *argv],
            rewrite_stderr=usage_error_translation(request),
        )
    status = child.status
    if status == _PYTEST_NO_TESTS:
        # The plugin's report of no scenarios would read "PASSED"; nothing was tested.
        err.print(
            "[red]squall test: pytest collected no tests; check --test-file, --category, "
            "--marker and --scenario (and that the test files are under this folder)[/red]"
        )
        return EXIT_USAGE
    if status == _PYTEST_USAGE:
        err.print("[red]squall test: pytest refused its command line (above); no test ran[/red]")
        return EXIT_USAGE
    path = results_dir / run_id / "report.json"
    if not path.is_file():
        # The plugin writes it to the temporary folder when the results folder cannot take
        # it (and says so above).
        path = fallback_folder(run_id) / "report.json"
    data: dict[str, Any] | None = None
    if path.is_file():
        data = json.loads(path.read_text())
    uncollected = _collection_errors(data)
    if data is not None:
        report = SuiteReport.from_dict(data)
        unreachable = report.config.get("unreachable")
        interrupted = report.interrupted or child.stopped
        if report.scenarios:
            # With no scenario run the summary's verdict would read "PASSED: 0 passed";
            # pytest's report and the lines below say what happened.
            for outcome in report.scenarios:
                print_scenario(console, outcome)
            print_summary(console, report, tests_failed=status == _PYTEST_FAILED)
        elif interrupted:
            console.print(
                "[yellow]squall test: interrupted before any squall scenario ran[/yellow]"
            )
        elif not (unreachable or uncollected or status == _PYTEST_FAILED):
            console.print(
                "squall test: the selected tests ran no squall scenario; those that need "
                "PostgreSQL, Redis and a target are skipped without --real-services"
            )
        console.print(f"results: {path}")
        if unreachable:
            said = plugin_option_translation(request, every=True)(str(unreachable))
            err.print(f"[red]squall test: {literal(said)}[/red]")
        elif not report.scenarios and not uncollected and status == _PYTEST_FAILED:
            err.print(
                "[red]squall test: tests failed (pytest's report above); no squall "
                "scenario ran[/red]"
            )
    elif status < 0:
        # Killed (the OOM killer, a signal) before the session's end, where the plugin
        # writes the report.
        err.print(
            f"[red]squall test: pytest was killed by {literal(_signal_name(-status))} "
            "before writing its report: what the tests measured is lost[/red]"
        )
    elif status != _PYTEST_OK:
        # Ended before the session's end (pytest-timeout's thread method exits at once),
        # or the plugin could write the report nowhere: either way its output says why.
        err.print(
            f"[red]squall test: pytest ended (exit status {status}) with no report to read "
            "(its output above says why): what the tests measured is lost[/red]"
        )
    else:
        console.print("squall test: the selected tests ran no squall scenario (no report)")
    if uncollected:
        err.print(
            f"[red]squall test: pytest could not collect {literal(', '.join(uncollected))} "
            "(see its errors above)[/red]",
            highlight=False,
        )
    return exit_code(status, data, stopped=child.stopped)
