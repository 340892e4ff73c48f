"""The plugin inside a pytest run of its own (pytester): markers, skipping, results, asserts."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from squall.metrics.result import Gauge, Rate
from squall.pytest_plugin import (
    SKIP_REASON,
    ThresholdAsserts,
    _stop_if_interrupted,
    diagnostic_table,
)
from squall.suite import ScenarioOutcome, nothing_measured

GATED = """
import pytest

@pytest.mark.high_load
def test_heavy(squall):
    raise AssertionError("must not run without --real-services")

@pytest.mark.real_services
def test_needs_services():
    raise AssertionError("must not run without --real-services")

@pytest.mark.integration
def test_plain_integration():
    pass
"""


INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"


@pytest.fixture(autouse=True)
def _inner_ini(request: pytest.FixtureRequest) -> None:
    """The inner runs get an ini of their own (the project's is not theirs)."""
    if "pytester" in request.fixturenames:
        request.getfixturevalue("pytester").makeini(INI)


def test_gated_tests_skip_with_a_reason_naming_the_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(GATED)
    result = pytester.runpytest("--strict-markers", "-W", "error", "-rs")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines([f"*{SKIP_REASON}*"])


def test_markers_are_registered_once_more_without_harm(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI + "markers =\n    integration: declared by the project too\n")
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.real_services:*", "@pytest.mark.high_load:*"])
    assert result.ret == 0


def test_fixture_without_the_option_skips(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_uses_it(real_services):\n    pass\n")
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*--real-services*"])


def test_a_target_without_a_secret_is_refused_before_any_socket(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile("def test_uses_it(real_services):\n    pass\n")
    result = pytester.runpytest("--real-services", "--squall-target", "ws://127.0.0.1:9/v1/ws")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*--squall-target needs the secret the target verifies*"])
    assert "pytest_plugin.py" not in result.stdout.str()  # the message, not the plugin's code


def test_a_target_off_this_machine_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_uses_it(real_services):\n    pass\n")
    result = pytester.runpytest("--squall-target", "ws://192.0.2.1:8000/v1/ws")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*squall: --squall-target ([[]target[]] url): host 192.0.2.1 is not a loopback*"]
    )


def test_monitor_pids_that_would_count_squall_itself_are_a_usage_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makefile(".toml", squall="[monitor]\npids = [1]\n")
    pytester.makepyfile("def test_uses_it(real_services):\n    pass\n")
    result = pytester.runpytest("--real-services")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*squall: monitor.pids: 1 runs squall itself*"])


@pytest.mark.usefixtures("shared_services")
def test_an_unreachable_target_is_named_by_the_plugin_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_uses_it(real_services):\n    pass\n")
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    result = pytester.runpytest(
        "--real-services",
        f"--squall-target=ws://127.0.0.1:{port}/v1/ws",
        "--squall-jwt-secret=" + "s" * 32,
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*is unreachable*check that it runs and that --squall-target ([[]target] url)*"]
    )
    # The secret is not written into report.json, the file a CI keeps.
    [report] = (pytester.path / "squall-results").glob("*/report.json")
    assert "s" * 32 not in report.read_text()
    assert "--squall-jwt-secret=***" in json.loads(report.read_text())["config"]["pytest_args"]


def test_another_adapter_without_a_target_is_refused_before_any_service_starts(
    pytester: pytest.Pytester,
) -> None:
    """Without --squall-target the reference platform is started, and it speaks only its own
    protocol: another adapter would be ignored, as squall run refuses it."""
    pytester.makepyfile("def test_uses_it(real_services):\n    pass\n")
    result = pytester.runpytest("--real-services", "--squall-adapter", "echo")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*squall: adapter 'echo' needs --squall-target: without it*"])


def test_the_secret_file_option_is_read_before_any_socket(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile("def test_uses_it(real_services):\n    pass\n")
    missing = pytester.path / "missing-secret.txt"
    result = pytester.runpytest(
        "--real-services",
        "--squall-target",
        "ws://127.0.0.1:9/v1/ws",
        "--squall-jwt-secret-file",
        str(missing),
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*cannot read the JWT secret file {missing}*"])
    assert "pytest_plugin.py" not in result.stdout.str()


def test_an_adapter_that_does_not_import_fails_its_tests_with_the_reason_alone(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile("def test_uses_it(real_services):\n    pass\n")
    result = pytester.runpytest("--real-services", "--squall-adapter", "nope")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*squall: unknown adapter 'nope'; choose one of*"])
    assert "pytest_plugin.py" not in result.stdout.str()


@pytest.mark.parametrize("run_id", ["../../escaped", "/tmp/abs", "..", ".hidden", "a/b"])
def test_a_run_id_that_is_a_path_is_a_usage_error(
    pytester: pytest.Pytester, tmp_path: Path, run_id: str
) -> None:
    # The report went to <results>/../../escaped/report.json, outside the results folder.
    pytester.makepyfile("def test_ok():\n    pass\n")
    result = pytester.runpytest(f"--squall-run-id={run_id}", f"--squall-results-dir={tmp_path}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"ERROR: squall: --squall-run-id {run_id!r} is not a folder name" in result.stderr.str()
    assert not list(tmp_path.parent.glob("*/report.json"))


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        # Read at the end, for the report's folder: this was a crash after the tests ran.
        (
            ["--squall-run-id=20260101-000000-abcd", "--squall-scale=-1"],
            "-1.0 for 'scale' in [run] (option --squall-scale)",
        ),
        # Read by the fixture: this was an error with a traceback in every test using it.
        (["--real-services", "--squall-scale=nan"], "nan for 'scale' in [run]"),
        (["--real-services"], "0 for 'scale' in [run] ("),  # the config file's own value
    ],
)
def test_a_bad_configuration_is_a_usage_error_before_any_test(
    pytester: pytest.Pytester, tmp_path: Path, options: list[str], problem: str
) -> None:
    if options == ["--real-services"]:
        pytester.makefile(".toml", squall="[run]\nscale = 0\n")
    pytester.makepyfile("def test_ok():\n    pass\n\ndef test_load(real_services):\n    pass\n")
    result = pytester.runpytest(*options, f"--squall-results-dir={tmp_path}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"ERROR: squall: invalid value {problem}" in result.stderr.str()
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert "passed" not in result.stdout.str()  # no test ran
    assert list(tmp_path.iterdir()) == []


def test_a_bad_configuration_is_no_concern_of_a_session_that_does_not_use_squall(
    pytester: pytest.Pytester,
) -> None:
    pytester.makefile(".toml", squall="[run]\nscale = 0\n")
    pytester.makepyfile("def test_ok():\n    pass\n")
    pytester.runpytest().assert_outcomes(passed=1)


NOT_AWAITED = """
import pytest

async def hello(session):
    pass

def test_sync(squall):
    squall.run(hello, users=1, iterations=1)

async def test_forgot_await(squall):
    squall.scenario("websocket_concurrency")
    squall.run(hello, users=1, iterations=1)

async def test_nothing_asked(squall):
    pass

def test_failed_before_its_teardown(squall):
    squall.run(hello, users=1, iterations=1)
    assert False, "its own failure"
"""


@pytest.mark.usefixtures("shared_services")
def test_a_squall_call_never_awaited_fails_its_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(NOT_AWAITED)
    with socket.create_server(("127.0.0.1", 0)) as target:  # reachable; never spoken to
        port = target.getsockname()[1]
        result = pytester.runpytest(
            "--real-services",
            f"--squall-target=ws://127.0.0.1:{port}/v1/ws",
            "--squall-jwt-secret=" + "s" * 32,
            "-o",
            "asyncio_mode=auto",
            "-W",
            "default",  # pytest's default: a "never awaited" warning alone fails nothing
        )
    # A test that ran no load does not pass: it errors at teardown, naming the fix; one
    # that failed already is not told again.
    result.assert_outcomes(passed=3, errors=2, failed=1)
    assert "ERROR at teardown of test_failed_before_its_teardown" not in result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_sync*",
            "squall.run() was never awaited, so no load ran: write 'await squall.run(...)' "
            "in an 'async def' test",
            "*ERROR at teardown of test_forgot_await*",
            "squall.scenario(), squall.run() were never awaited, so no load ran: "
            "write 'await squall.scenario(...)' in an 'async def' test",
        ]
    )
    assert "RuntimeWarning" not in result.stdout.str()  # closed: no "never awaited" warning


def test_a_run_id_always_writes_a_report(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile("def test_ok():\n    pass\n")
    result = pytester.runpytest(
        "--squall-run-id=20260101-000000-abcd", f"--squall-results-dir={tmp_path}"
    )
    result.assert_outcomes(passed=1)
    path = tmp_path / "20260101-000000-abcd" / "report.json"
    report = json.loads(path.read_text())
    assert report["schema"] == "squall.report/1"
    assert report["scenarios"] == []
    assert report["config"]["source"] == "pytest"
    result.stdout.fnmatch_lines([f"squall results: {path}"])


RUN_ID = "20260101-000000-abcd"


def test_the_report_records_the_scale_of_the_config_file(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    # It recorded --squall-scale alone: null, while the tests ran at the file's 0.4.
    pytester.makefile(".toml", squall="[run]\nscale = 0.4\n")
    pytester.makepyfile("def test_ok():\n    pass\n")
    result = pytester.runpytest("--squall-adapter=squall", *_report_options(tmp_path))
    result.assert_outcomes(passed=1)
    report = json.loads((tmp_path / RUN_ID / "report.json").read_text())
    assert report["config"]["scale"] == 0.4


def _report_options(tmp_path: Path) -> list[str]:
    return [f"--squall-run-id={RUN_ID}", f"--squall-results-dir={tmp_path}"]


def test_a_results_folder_that_cannot_be_made_is_a_usage_error_before_any_test(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile("def test_ok():\n    pass\n")
    (tmp_path / "taken").write_text("a file where the folder would go\n")
    result = pytester.runpytest(
        f"--squall-run-id={RUN_ID}", f"--squall-results-dir={tmp_path / 'taken' / 'out'}"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*squall: cannot create the results folder*Not a directory*"])
    assert "passed" not in result.stdout.str()


def _run_with_blocked_results(pytester: pytest.Pytester, results: Path) -> pytest.RunResult:
    """A passing session whose run's folder in ``results`` cannot be made."""
    results.mkdir()
    (results / RUN_ID).write_text("in the way")
    pytester.makepyfile("def test_ok():\n    pass\n")
    return pytester.runpytest(f"--squall-run-id={RUN_ID}", f"--squall-results-dir={results}")


def test_a_report_that_cannot_go_to_its_folder_goes_to_the_temp_folder(
    pytester: pytest.Pytester, tmp_path: Path, temp_dir: Path
) -> None:
    results = tmp_path / "results"
    result = _run_with_blocked_results(pytester, results)
    result.assert_outcomes(passed=1)
    fallback = temp_dir / "squall-results" / RUN_ID / "report.json"
    assert json.loads(fallback.read_text())["run_id"] == RUN_ID
    result.stdout.fnmatch_lines(
        [
            f"squall: the report could not be written to {results} (File exists: "
            f"{results / RUN_ID}); it is in {fallback.parent} instead.*",
            f"squall results: {fallback}",
        ]
    )
    assert result.ret == pytest.ExitCode.OK


def test_a_report_that_can_be_written_nowhere_fails_the_session(
    pytester: pytest.Pytester, tmp_path: Path, temp_dir: Path
) -> None:
    blocked = temp_dir / "squall-results"
    blocked.write_text("in the way of the fallback folder")
    results = tmp_path / "results"
    result = _run_with_blocked_results(pytester, results)
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    result.stdout.fnmatch_lines(
        [f"squall: the report could not be written to {results} (*), nor to {blocked}*"]
    )
    assert "squall results:" not in result.stdout.str()


def test_a_test_file_that_does_not_import_is_named_and_is_no_interruption(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(
        test_broken="def test_x(:\n    pass\n", test_fine="def test_ok():\n    pass\n"
    )
    result = pytester.runpytest(*_report_options(tmp_path))
    # pytest's own status for it is "interrupted"
    assert result.ret == pytest.ExitCode.INTERRUPTED
    report = json.loads((tmp_path / RUN_ID / "report.json").read_text())
    assert report["config"]["collection_errors"] == ["test_broken.py"]
    assert report["interrupted"] is False


def test_a_keyboard_interrupt_is_recorded_as_the_interruption(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile("def test_ctrl_c():\n    raise KeyboardInterrupt\n")
    result = pytester.runpytest_inprocess(*_report_options(tmp_path), no_reraise_ctrlc=True)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    report = json.loads((tmp_path / RUN_ID / "report.json").read_text())
    assert report["interrupted"] is True
    assert report["config"]["collection_errors"] == []


def test_no_report_when_pytest_refuses_the_command_line(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile("def test_ok():\n    pass\n")
    result = pytester.runpytest(*_report_options(tmp_path), "-m", "bad (")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert not (tmp_path / RUN_ID).exists()


@pytest.mark.parametrize(
    ("config_file", "option", "named"),
    [
        ("[run]\nscale = 'big'\n", None, "squall.toml"),
        ("", "--squall-scale=0", "option --squall-scale"),
    ],
    ids=["squall.toml", "option"],
)
def test_a_configuration_that_cannot_be_read_is_a_usage_error_before_any_test(
    pytester: pytest.Pytester, config_file: str, option: str | None, named: str
) -> None:
    """With a run id the report's folder comes from the configuration: a bad one is refused
    up front, not found by a crash once the tests have run."""
    pytester.makefile(".toml", squall=config_file)
    pytester.makepyfile("def test_ok():\n    pass\n")
    result = pytester.runpytest(f"--squall-run-id={RUN_ID}", *([option] if option else []))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: squall: invalid value *{named}*"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
    assert not (pytester.path / "squall-results").exists()


def test_no_report_when_no_squall_test_ran(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_ok():\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "squall-results").exists()


def _outcome() -> ScenarioOutcome:
    return ScenarioOutcome(
        name="chat",
        metrics={
            "success": Rate("success", passes=8, total=10),
            "violations": Gauge("violations", 0.0, 0.0, 0.0),
        },
        outcomes=[],
    )


def test_thresholds_pass_and_are_added_to_the_outcome() -> None:
    outcome = _outcome()
    judged = ThresholdAsserts().check(outcome, violations="value == 0")
    assert [o.status.value for o in judged] == ["passed"]
    assert outcome.outcomes == judged


def test_thresholds_failure_message_is_the_whole_table() -> None:
    outcome = _outcome()
    with pytest.raises(AssertionError) as caught:
        ThresholdAsserts().check(outcome, {"success": ["rate >= 0.9"]}, violations=["value == 0"])
    message = str(caught.value)
    assert "scenario  metric" in message
    rows = [line.split() for line in message.splitlines()]
    assert ["chat", "success", "rate", ">=", "0.9", "0.8", "FAIL"] in rows
    assert ["chat", "violations", "value", "==", "0", "0", "pass"] in rows
    assert "[chat] success rate = 0.8, limit >= 0.9: FAILED" in message
    assert len(outcome.outcomes) == 2  # recorded for the report even though the test fails


def test_a_threshold_on_a_metric_not_recorded_fails_unless_missing_ok() -> None:
    with pytest.raises(AssertionError, match="n/a"):
        ThresholdAsserts().check(_outcome(), delivery="rate >= 0.8")
    judged = ThresholdAsserts().check(_outcome(), delivery="rate >= 0.8", missing_ok=True)
    assert judged[0].status.value == "not_applicable"


def test_a_run_that_measured_nothing_fails_a_check_of_its_own_expressions() -> None:
    # A target that never answered: squall.run failed its "measured something" check, and
    # a check with missing_ok passed on the not-applicable expressions the test gave.
    outcome = ScenarioOutcome(
        name="chat",
        metrics={},
        outcomes=nothing_measured("chat", iterations=0, answered=0, interrupted=3, errors=0),
    )
    with pytest.raises(AssertionError) as caught:
        ThresholdAsserts().check(outcome, success="rate >= 0.9", missing_ok=True)
    message = str(caught.value)
    assert ["chat", "iterations", "count", ">", "0", "0", "FAIL"] in [
        line.split() for line in message.splitlines()
    ]
    assert "no iteration ended and no message was answered" in message


def test_a_failed_check_names_the_runs_commonest_errors() -> None:
    # A rejected token read only "success rate = 0 ... FAILED"; the cause was in report.json.
    outcome = _outcome()
    outcome.result = {
        "errors": [
            {"kind": "timeout", "count": 1, "samples": ["no answer in 10 s"]},
            {"kind": "connect", "count": 9, "samples": ["connection closed (code 4401)"]},
        ]
    }
    with pytest.raises(AssertionError) as caught:
        ThresholdAsserts().check(outcome, success="rate >= 0.9")
    lines = str(caught.value).splitlines()
    assert lines[-2:] == [
        "errors.connect 9: connection closed (code 4401)",
        "errors.timeout 1: no answer in 10 s",
    ]


def test_a_metric_given_twice_keeps_both_expressions() -> None:
    # {"success": [...]} and success=...: the stricter one in the mapping was dropped.
    with pytest.raises(AssertionError, match=r"success rate = 0.8, limit >= 0.9: FAILED"):
        ThresholdAsserts().check(_outcome(), {"success": ["rate >= 0.9"]}, success="rate >= 0.5")


def test_a_failed_check_points_at_the_test_line_not_the_plugin(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_judged="""
from squall.metrics.result import Rate
from squall.suite import ScenarioOutcome

def test_judged(thresholds):
    outcome = ScenarioOutcome("chat", {"success": Rate("success", 8, 10)}, [])
    thresholds.check(outcome, success="rate >= 0.9")
"""
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["test_judged.py:6: AssertionError"])
    assert "pytest_plugin.py" not in result.stdout.str()


def test_a_scenario_stopped_by_a_signal_stops_the_session(pytester: pytest.Pytester) -> None:
    _stop_if_interrupted(_outcome())  # not stopped: nothing happens
    pytester.makepyfile(
        test_stopped="""
from squall.pytest_plugin import _stop_if_interrupted
from squall.suite import ScenarioOutcome

def test_first():
    _stop_if_interrupted(ScenarioOutcome("chat", {}, [], stopped=True))

def test_second():
    pass
"""
    )
    result = pytester.runpytest_inprocess(no_reraise_ctrlc=True)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*KeyboardInterrupt: chat: interrupted; its partial results*"])
    result.assert_outcomes()  # test_second never ran


def test_diagnostic_table_aligns_columns() -> None:
    outcome = _outcome()
    ThresholdAsserts().check(outcome, violations="value == 0")
    lines = diagnostic_table(outcome.outcomes).splitlines()
    assert lines[0].split() == ["scenario", "metric", "threshold", "observed", "result"]
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].split() == ["chat", "violations", "value", "==", "0", "0", "pass"]


OWN_PLATFORM_PARTS = """
async def test_parts_that_need_the_platform_squall_started(squall, thresholds):
    outcome = await squall.scenario("platform_races", scale=0.25)
    notes = " | ".join(outcome.notes)
    assert "takeover: deleted" in notes, notes
    assert "sessions: 2 concurrent logins" in notes, notes
    thresholds.check(outcome)
"""


@pytest.mark.usefixtures("shared_services")
def test_platform_races_under_the_plugin_runs_the_parts_of_its_own_platform(
    pytester: pytest.Pytester,
) -> None:
    # They read not applicable ("needs the platform's own Redis", "an external target's
    # session policy") although the plugin had started the platform, as squall run does.
    pytester.makefile(
        ".toml", squall='[scenarios.platform_races]\nparts = ["takeover", "sessions"]\n'
    )
    pytester.makepyfile(OWN_PLATFORM_PARTS)
    result = pytester.runpytest("--real-services", "-o", "asyncio_mode=auto")
    result.assert_outcomes(passed=1)
    # As squall run, the report records the settings of the platform the session started.
    [report] = (pytester.path / "squall-results").glob("*/report.json")
    assert json.loads(report.read_text())["config"]["platform"]["run_concurrency"] == "64"


LEFT_OUT = """
async def test_asks_for_platform_races(squall):
    await squall.scenario("platform_races")
"""


@pytest.mark.usefixtures("shared_services")
def test_a_reference_only_scenario_against_another_adapter_fails_saying_why(
    pytester: pytest.Pytester,
) -> None:
    # It ran against the echo target and failed after 30 s with "got no hello".
    pytester.makepyfile(LEFT_OUT)
    with socket.create_server(("127.0.0.1", 0)) as target:  # reachable; never spoken to
        port = target.getsockname()[1]
        result = pytester.runpytest(
            "--real-services",
            "--squall-adapter=echo",
            f"--squall-target=ws://127.0.0.1:{port}/",
            "-o",
            "asyncio_mode=auto",
        )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*squall: not run: platform_races drives the reference platform's own protocol and "
            "API, while this target is spoken to through adapter 'echo'*"
        ]
    )
    [report] = (pytester.path / "squall-results").glob("*/report.json")
    (scenario,) = json.loads(report.read_text())["scenarios"]
    assert (scenario["name"], scenario["ran"]) == ("platform_races", False)
