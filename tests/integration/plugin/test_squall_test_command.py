"""``squall test``: pytest with the plugin, then `squall run`'s summary and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from squall.cli import main
from squall.testrunner import (
    TestRequest,
    exit_code,
    marker_expression,
    pytest_argv,
    usage_error_translation,
)

DOCS_EXAMPLE = Path(__file__).with_name("test_docs_example.py")


def test_marker_expression_any_category_and_every_marker() -> None:
    assert marker_expression([], []) is None
    assert marker_expression(["integration"], []) == "integration"
    assert marker_expression(["unit", "integration"], ["high_load"]) == (
        "(unit or integration) and (high_load)"
    )


def test_pytest_argv_carries_the_plugin_options() -> None:
    request = TestRequest(
        real_services=True,
        categories=("integration",),
        test_files=(Path("tests/x.py"),),
        scenarios=("websocket",),
        scale=0.2,
        adapter="echo",
        jwt_secret_file=Path("secret.txt"),
        pytest_args=("-x",),
    )
    argv = pytest_argv(request, run_id="RID", results_dir=Path("out"))
    assert argv == [
        "tests/x.py",
        "-m",
        "integration",
        "-k",
        "websocket",
        "--real-services",
        "--squall-scale=0.2",
        "--squall-adapter=echo",
        "--squall-jwt-secret-file=secret.txt",
        "--squall-run-id=RID",
        "--squall-results-dir=out",
        "-x",
    ]


@pytest.mark.parametrize(
    ("status", "report", "expected"),
    [
        (0, {"verdict": {"ok": True}}, 0),
        (0, {"verdict": {"ok": False}}, 1),
        # As the plugin writes it: thresholds passed beside the one that failed.
        (0, {"verdict": {"ok": False, "passed": 3, "failed": 1}}, 1),
        (1, {"verdict": {"ok": True}}, 1),
        (1, {"config": {"unreachable": "no PostgreSQL"}}, 3),
        (4, None, 2),
        (5, None, 2),
        (2, {"interrupted": True}, 130),
        # pytest's status 2 without a Ctrl-C: it stopped by itself (a test file that does not
        # import): a failure, not an interruption
        (2, {"interrupted": False, "config": {"collection_errors": ["test_x.py"]}}, 1),
        (2, None, 1),
        (0, None, 0),
    ],
)
def test_exit_codes_match_squall_run(status: int, report: dict | None, expected: int) -> None:
    assert exit_code(status, report) == expected


def test_a_ctrl_c_or_sigterm_this_process_got_is_an_interruption() -> None:
    assert exit_code(2, None, stopped=True) == 130
    assert exit_code(-2, None, stopped=True) == 130  # pytest died of the SIGINT
    assert exit_code(0, {"verdict": {"ok": True}}, stopped=True) == 0  # it finished anyway


@pytest.mark.parametrize(
    ("request_", "line", "expected"),
    [
        (
            TestRequest(categories=("a",)),
            "ERROR: Wrong expression passed to '-m': bad (: at column 6: expected identifier\n",
            "ERROR: Wrong expression passed to --category: bad (: at column 6: expected "
            "identifier\n",
        ),
        (
            TestRequest(categories=("a",), markers=("b",)),
            "\x1b[31mERROR: Unknown marker(s) in '-m' expression: b.\n",
            "\x1b[31mERROR: Unknown marker(s) in --category/--marker expression: b.\n",
        ),
        (
            TestRequest(scenarios=("x",)),
            "ERROR: Wrong expression passed to '-k': x\n",
            "ERROR: Wrong expression passed to --scenario: x\n",
        ),
        # the -m after -- is the one pytest used: the message is about it
        (
            TestRequest(categories=("a",), pytest_args=("-m", "b (")),
            "ERROR: Wrong expression passed to '-m': b (\n",
            "ERROR: Wrong expression passed to '-m': b (\n",
        ),
        # squall set no -m
        (TestRequest(), "ERROR: Wrong expression passed to '-m': x\n", None),
        # not a usage error: left as the tests wrote it
        (TestRequest(categories=("a",)), "the '-m' option\n", None),
        # the plugin's option squall set, named as squall test's: was --squall-target
        (
            TestRequest(target="ws://x"),
            "ERROR: squall: --squall-target ([target] url) 'ws://x' is not on this machine\n",
            "ERROR: squall: --target ([target] url) 'ws://x' is not on this machine\n",
        ),
        (
            TestRequest(jwt_secret_file=Path("f")),
            "ERROR: squall: --squall-jwt-secret-file f: no such file; --squall-results-dir r\n",
            "ERROR: squall: --jwt-secret-file f: no such file; --results-dir r\n",
        ),
        # not set by squall test: left alone
        (TestRequest(), "ERROR: squall: --squall-target x\n", None),
        # given after --: pytest's own, named as given
        (
            TestRequest(pytest_args=("--squall-results-dir=/r",)),
            "ERROR: squall: --squall-results-dir /r\n",
            None,
        ),
    ],
)
def test_pytest_usage_errors_name_the_options_typed(
    request_: TestRequest, line: str, expected: str | None
) -> None:
    assert usage_error_translation(request_)(line) == (line if expected is None else expected)


def test_missing_test_file_is_a_usage_error(tmp_path: Path) -> None:
    assert main(["test", "--test-file", str(tmp_path / "nope.py")]) == 2


def test_plugin_options_become_config_overrides() -> None:
    request = TestRequest(scale=0.5, target='ws://h:1/"x"', adapter="echo")
    assert request.config_overrides() == [
        "run.scale=0.5",
        'target.url="ws://h:1/\\"x\\""',
        'target.adapter="echo"',
    ]
    assert TestRequest().config_overrides() == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--scale", "-2"], "invalid value -2.0 for 'scale' in [run]"),
        (["--target", "http://x"], "where ws:// or wss:// is needed"),
        (["--adapter", "nope"], "unknown adapter 'nope'"),
        (["--adapter", "echo"], "adapter 'echo' needs --target: without it squall starts"),
        (
            ["--target", "ws://192.0.2.7:8765/v1/ws", "--jwt-secret", "s" * 32],
            "--target ([target] url): host 192.0.2.7 is not a loopback address",
        ),
    ],
)
def test_bad_options_stop_before_pytest_starts(
    options: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["test", *options]) == 2
    captured = capsys.readouterr()
    assert message in " ".join(captured.err.split())
    assert "pytest" not in captured.out  # the command line it would have run
    assert not (tmp_path / "squall-results").exists()


def test_a_target_without_a_secret_stops_before_pytest_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "test_load.py").write_text("def test_load(real_services):\n    pass\n")
    args = ["test", "--real-services", "--target", "ws://127.0.0.1:9/v1/ws"]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert (
        "--target needs the secret the target verifies tokens with; pass --jwt-secret"
        in " ".join(captured.err.split())
    )
    assert "pytest" not in captured.out
    # Without --real-services no test reaches the target, so no secret is needed.
    assert main([*args[:1], *args[2:], "--results-dir", str(tmp_path / "out")]) == 0


def test_a_private_key_that_cannot_sign_stops_before_pytest_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "junk.pem").write_text("not a key\n")
    (tmp_path / "squall.toml").write_text('[target]\njwt_private_key_file = "junk.pem"\n')
    assert main(["test"]) == 2
    captured = capsys.readouterr()
    assert "holds no PEM RSA private key" in " ".join(captured.err.split())
    assert "pytest" not in captured.out


def test_an_empty_secret_file_stops_before_pytest_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "secret.txt").write_text("\n")
    assert main(["test", "--jwt-secret-file", "secret.txt"]) == 2
    captured = capsys.readouterr()
    assert "the JWT secret file secret.txt is empty" in " ".join(captured.err.split())
    assert "pytest" not in captured.out


def test_no_collected_tests_is_a_usage_error_not_a_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "test_nothing.py").write_text("def helper():\n    pass\n")
    assert main(["test", "--results-dir", str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    assert "pytest collected no tests" in " ".join(captured.err.split())
    assert "PASSED" not in captured.out
    assert not any((tmp_path / "out").iterdir())  # no report of a run where nothing ran


def _squall_test(tmp_path: Path, *options: str) -> int:
    return main(
        ["test", *options, "--results-dir", str(tmp_path / "out"), "--", "-p", "no:cacheprovider"]
    )


def _test_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, source: str
) -> tuple[int, str, str]:
    """``squall test --test-file name`` of a file holding ``source``: the exit code, the
    standard output and the standard error on one line (whatever the wrapping)."""
    (tmp_path / name).write_text(source)
    code = _squall_test(tmp_path, "--test-file", name)
    captured = capsys.readouterr()
    return code, captured.out, " ".join(captured.err.split())


def test_a_test_file_that_does_not_import_fails_and_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = _test_file(tmp_path, capsys, "test_syntax.py", "def test_x(:\n    pass\n")
    assert code == 1, out
    assert "pytest could not collect test_syntax.py" in err
    assert "PASSED" not in out
    assert "interrupted" not in out


def test_a_failed_test_without_a_scenario_reads_failed_not_passed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    source = "def test_fails():\n    assert 1 == 2\n"
    code, out, err = _test_file(tmp_path, capsys, "test_plain.py", source)
    assert code == 1, out
    assert "PASSED" not in out
    assert "tests failed (pytest's report above); no squall scenario ran" in err


def test_tests_that_ran_no_scenario_read_no_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real_services test without --real-services is skipped: nothing was measured, and
    # the summary read "PASSED: 0 passed".
    monkeypatch.chdir(tmp_path)
    source = "import pytest\n\n@pytest.mark.real_services\ndef test_needs_services():\n    pass\n"
    code, out, _ = _test_file(tmp_path, capsys, "test_skipped.py", source)
    assert code == 0, out
    assert "PASSED" not in out
    assert "the selected tests ran no squall scenario" in " ".join(out.split())
    assert "skipped without --real-services" in " ".join(out.split())


def test_a_results_folder_outside_the_project_keeps_pytest_in_the_project(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given as its own word, the folder counted as a test path for pytest's rootdir: the
    # rootdir became the common ancestor, whose squall.toml (none) pytest then read.
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    (project / "squall.toml").write_text("[run]\nscale = 0.5\n")
    (project / "test_ok.py").write_text("def test_ok():\n    pass\n")
    monkeypatch.chdir(project)
    code = main(["test", "--test-file", "test_ok.py", "--results-dir", str(elsewhere)])
    out = " ".join(capfd.readouterr().out.split())
    assert code == 0, out
    assert f"rootdir: {project}" in out, out
    assert list(elsewhere.glob("*/report.json"))


def test_a_ctrl_c_in_the_tests_is_still_an_interruption(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    # The signal a terminal's Ctrl-C sends, to pytest alone: this process sees none.
    source = "import os, signal\n\ndef test_ctrl_c():\n    os.kill(os.getpid(), signal.SIGINT)\n"
    code, out, _ = _test_file(tmp_path, capsys, "test_ctrl_c.py", source)
    assert code == 130, out
    assert "interrupted" in out


def test_a_results_folder_that_cannot_be_created_stops_before_pytest_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "test_ok.py").write_text("def test_ok():\n    pass\n")
    (tmp_path / "taken").write_text("a file where the folder would go\n")
    code = main(["test", "--test-file", "test_ok.py", "--results-dir", "taken/out"])
    captured = capsys.readouterr()
    assert code == 2
    err = " ".join(captured.err.split())
    assert "cannot create the results folder taken/out: Not a directory" in err
    assert "pass --results-dir a folder you can write to" in err
    assert "pytest" not in captured.out


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ["--category", "bad ("],
            "ERROR: Wrong expression passed to --category: bad (: at column 6",
        ),
        (["--scenario", "x or"], "ERROR: Wrong expression passed to --scenario: x or:"),
        (["--", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_a_pytest_usage_error_is_a_usage_error_without_a_summary(
    options: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "test_ok.py").write_text("def test_ok():\n    pass\n")
    code = main(
        ["test", "--test-file", "test_ok.py", "--results-dir", "out", *options]
        + ([] if "--" in options else ["--"])
        + ["-p", "no:cacheprovider"]
    )
    captured = capsys.readouterr()
    assert code == 2, captured.out
    assert message in captured.err
    assert "'-m'" not in captured.err
    assert "'-k'" not in captured.err
    assert "pytest refused its command line" in captured.err
    assert "PASSED" not in captured.out
    assert "ran no squall scenario" not in captured.out


@pytest.mark.integration
def test_runs_the_docs_example_and_prints_the_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "test",
            "--real-services",
            "--category",
            "integration",
            "--test-file",
            str(DOCS_EXAMPLE),
            "--scale",
            "0.1",
            "--results-dir",
            str(tmp_path),
            "--",
            "-p",
            "no:cacheprovider",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    (path,) = tmp_path.glob("*/report.json")
    report = json.loads(path.read_text())
    (scenario,) = report["scenarios"]
    assert scenario["name"] == "chat_15_messages"
    assert {t["metric"] for t in scenario["thresholds"]} >= {"response_time", "violations"}
    # The platform the session started kept its log beside the report, as under squall
    # run (it went to a temporary folder, removed with the platform).
    assert "listening on" in (path.parent / "platform.log").read_text()
    assert "Thresholds" in out
    assert "PASSED: 7 passed, 0 failed" in out


def _against_an_unreachable_target(test_file: str, results: Path) -> int:
    """``squall test --real-services`` of ``test_file`` against a port nothing listens on."""
    argv = ["test", "--real-services", "--target", "ws://127.0.0.1:1/v1/ws"]
    argv += ["--jwt-secret", "s" * 32, "--test-file", test_file, "--results-dir", str(results)]
    return main([*argv, "--", "-p", "no:cacheprovider"])


@pytest.mark.integration
def test_an_unreachable_target_is_an_error_not_an_empty_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "test_uses_services.py").write_text(
        "def test_needs_the_target(real_services):\n    pass\n"
    )
    code = _against_an_unreachable_target("test_uses_services.py", tmp_path / "out")
    captured = capsys.readouterr()
    assert code == 3, captured.out
    said = " ".join(captured.err.split())
    assert "ws://127.0.0.1:1/v1/ws is unreachable" in said
    # The option typed, not the plugin's squall set for it.
    assert "check that it runs and that --target ([target] url) names its host" in said
    assert "--squall-target" not in said
    assert "PASSED" not in captured.out
    # The secret reached pytest in a file, not on its command line (printed above, and
    # shown to every user of the machine by ps).
    assert "s" * 32 not in captured.out + captured.err
    assert "--squall-jwt-secret-file=" in captured.out


@pytest.mark.integration
def test_an_unreachable_target_of_the_config_file_is_named_by_squall_tests_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # No --target typed: the message named --squall-target, an option squall test lacks.
    monkeypatch.chdir(tmp_path)
    secret = "s" * 32
    (tmp_path / "squall.toml").write_text(
        f'[target]\nurl = "ws://127.0.0.1:1/v1/ws"\njwt_secret = "{secret}"\n'
    )
    (tmp_path / "test_uses_services.py").write_text(
        "def test_needs_the_target(real_services):\n    pass\n"
    )
    argv = ["test", "--real-services", "--test-file", "test_uses_services.py"]
    code = main([*argv, "--results-dir", str(tmp_path / "out"), "--", "-p", "no:cacheprovider"])
    said = " ".join(capsys.readouterr().err.split())
    assert code == 3
    assert "check that it runs and that --target ([target] url) names its host" in said
    assert "--squall-target" not in said


MOVES_THE_RESULTS = """
import os, pathlib

def test_needs_the_target(real_services):
    pass

def test_then_the_results_folder_goes():
    out = pathlib.Path(os.environ["RESULTS"])
    for run in out.iterdir():
        run.rmdir()
    out.rmdir()
    out.write_text("in the way")
"""


@pytest.mark.integration
def test_a_report_the_plugin_wrote_to_the_temporary_folder_is_read_there(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    temp_dir: Path,
) -> None:
    # It read "ran no squall scenario (no report)" and judged pytest's status alone.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TMPDIR", str(temp_dir))
    monkeypatch.setenv("RESULTS", str(tmp_path / "out"))
    (tmp_path / "test_moves.py").write_text(MOVES_THE_RESULTS)
    code = _against_an_unreachable_target("test_moves.py", tmp_path / "out")
    captured = capsys.readouterr()
    out = " ".join(captured.out.split())
    assert code == 3, out
    assert "ws://127.0.0.1:1/v1/ws is unreachable" in " ".join(captured.err.split())
    assert f"results: {temp_dir / 'squall-results'}" in out


def test_a_reader_gone_leaves_the_tests_and_their_report_whole(tmp_path: Path) -> None:
    # `squall test | head -1`: pytest wrote to the same pipe, died of the broken pipe once
    # head had left, before the plugin wrote report.json, and squall test exited 1 for
    # passing tests.
    (tmp_path / "test_ok.py").write_text(
        "def test_ok():\n    print('x' * 200_000)\n"  # more than a pipe holds
    )
    argv = [sys.executable, "-m", "squall", "test", "--test-file", "test_ok.py", "--", "-s"]
    child = subprocess.Popen(
        argv,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "SQUALL_RESULTS_DB": "off"},
    )
    assert child.stdout is not None
    assert child.stderr is not None
    assert child.stdout.readline().startswith(b"squall test: pytest ")
    child.stdout.close()  # as head -1 does
    err = child.stderr.read().decode()
    assert child.wait(timeout=120) == 0, err
    assert "standard output failed (Broken pipe)" in err
    (report,) = (tmp_path / "squall-results").glob("*/report.json")
    assert json.loads(report.read_text())["run_id"]


def test_squall_test_without_pytest_installed_says_so(tmp_path: Path) -> None:
    # pytest came only with the dev extra: "No module named pytest" scrolled past, then
    # "the selected tests ran no squall scenario (no report)", exit 1.
    script = (
        "import sys; sys.modules['pytest'] = None  # as if not installed\n"
        "from squall.cli import main; sys.exit(main(['test']))"
    )
    child = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert child.returncode == 2, child.stderr
    assert "pytest is not installed" in child.stderr
    assert "pip install 'squall[pytest]'" in child.stderr
    assert not (tmp_path / "squall-results").exists()


def test_pytest_killed_before_its_report_is_said(tmp_path: Path) -> None:
    # It read "the selected tests ran no squall scenario (no report)".
    (tmp_path / "test_killed.py").write_text(
        "import os, signal\n\ndef test_killed():\n    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    argv = [sys.executable, "-m", "squall", "test", "--test-file", "test_killed.py"]
    child = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert child.returncode == 1, child.stderr
    err = " ".join(child.stderr.split())
    assert "pytest was killed by SIGKILL before writing its report" in err
    assert "ran no squall scenario" not in child.stdout


def test_a_closed_standard_output_leaves_the_tests_and_their_report_whole(
    tmp_path: Path,
) -> None:
    # `squall test >&-`: the /dev/null squall put in descriptor 1's place was not
    # inheritable, so pytest started with no standard output and crashed at once.
    (tmp_path / "test_ok.py").write_text("def test_ok():\n    print('ok')\n")
    argv = [sys.executable, "-m", "squall", "test", "--test-file", "test_ok.py"]
    child = subprocess.run(
        argv,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SQUALL_RESULTS_DB": "off"},
        preexec_fn=lambda: os.close(1),
        timeout=120,
    )
    assert child.returncode == 0, child.stderr
    assert list((tmp_path / "squall-results").glob("*/report.json"))
