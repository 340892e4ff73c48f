"""``squall run`` end to end: exit codes and diagnostics a CI job relies on."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from squall.cli import main
from squall.services import Endpoints

pytestmark = pytest.mark.integration


def _report(results: Path) -> dict[str, object]:
    (path,) = results.glob("*/report.json")
    data: dict[str, object] = json.loads(path.read_text())
    return data


def test_tightened_threshold_fails_with_a_diagnostic(
    shared_services: Endpoints, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "run",
            "--scenario",
            "websocket_concurrency",
            "--scale",
            "0.05",
            "--results-dir",
            str(tmp_path),
            "--no-progress",
            "--set",
            'thresholds.response_time=["p(95) <= 1us"]',
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "[websocket_concurrency] response_time p(95) = " in out
    assert "limit <= 1µs: FAILED" in out
    report = _report(tmp_path)
    assert report["schema"] == "squall.report/1"
    verdict = report["verdict"]
    assert isinstance(verdict, dict)
    assert verdict["ok"] is False
    assert verdict["failed"] == 1
    # The platform squall started logged beside the report.
    (log,) = tmp_path.glob("*/platform.log")
    assert "listening on ws://127.0.0.1:" in log.read_text()


def test_unreachable_target_exits_3_with_one_line(
    tmp_path: Path, shared_services: Endpoints, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "run",
            "--target",
            "ws://127.0.0.1:1/v1/ws",
            "--jwt-secret",
            "secret",
            "--results-dir",
            str(tmp_path),
        ]
    )
    err = capsys.readouterr().err
    assert code == 3
    assert "ws://127.0.0.1:1/v1/ws is unreachable" in err
    assert "that --target ([target] url) names" in " ".join(err.split())  # or squall.toml's
    assert len(err.strip().splitlines()) <= 3
    # A password in the URL is not printed back.
    common = ["--jwt-secret", "secret", "--results-dir", str(tmp_path)]
    assert main(["run", "--target", "ws://user:hunter2@127.0.0.1:1/v1/ws", *common]) == 3
    err = capsys.readouterr().err
    assert "ws://user:***@127.0.0.1:1/v1/ws is unreachable" in err
    assert "hunter2" not in err


def test_a_target_that_never_answers_fails_even_when_the_run_is_capped(
    tmp_path: Path, shared_services: Endpoints, capsys: pytest.CaptureFixture[str]
) -> None:
    # Connections are accepted (by the kernel) and the upgrade is never answered; the cap
    # ends the run before a connect times out, so no metric has a sample.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        code = main(
            [
                "run",
                "--target",
                f"ws://127.0.0.1:{port}/v1/ws",
                "--jwt-secret",
                "s" * 32,
                "--scenario",
                "websocket_concurrency",
                "--scale",
                "0.02",
                "--duration",
                "2",
                "--processes",
                "1",
                "--results-db",
                "off",
                "--results-dir",
                str(tmp_path),
                "--no-progress",
            ]
        )
    out = " ".join(capsys.readouterr().out.split())  # as one line, whatever the wrapping
    assert code == 1
    assert "[websocket_concurrency] iterations count = 0, limit > 0: FAILED" in out
    assert "iteration(s) still waiting when the run ended" in out
    verdict = _report(tmp_path)["verdict"]
    assert isinstance(verdict, dict)
    assert verdict["ok"] is False


def test_config_typo_exits_2_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "squall.toml").write_text('[thresholds]\nrespnse_time = ["p(95) < 8s"]\n')
    monkeypatch.chdir(tmp_path)
    code = main(["run"])
    err = capsys.readouterr().err
    assert code == 2
    assert "respnse_time" in err
    assert "response_time" in err


def test_unknown_scenario_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["run", "--scenario", "nope", "--results-dir", str(tmp_path)])
    assert code == 2
    assert "unknown scenario(s) nope" in capsys.readouterr().err


def test_race_scenarios_pass_and_report(
    shared_services: Endpoints, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "run",
            "-s",
            "db_race",
            "-s",
            "redis_locks",
            "--results-dir",
            str(tmp_path),
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "naive read-modify-write caught losing" in out
    # Both work on PostgreSQL and Redis alone: no platform is started for them.
    flat = " ".join(out.split())  # rich wraps long lines at the console's width
    assert "the selected scenarios talk to no target, so no platform is started" in flat
    assert "reference platform up" not in flat
    report = _report(tmp_path)
    config = report["config"]
    assert isinstance(config, dict)
    assert config["target"] is None
    scenarios = report["scenarios"]
    assert isinstance(scenarios, list)
    assert [s["name"] for s in scenarios] == ["db_race", "redis_locks"]
    assert list(tmp_path.glob("*/db_race.history.jsonl"))


@pytest.mark.parametrize(
    ("override", "failures"),
    [
        # Every debit refused (the balance below one debit's amount): the checkers judged
        # nothing and naive lost nothing, and the run passed.
        (
            "scenarios.db_race.initial_balance=3",
            [
                "operations count = 0, limit > 0: FAILED: no debit committed",
                "naive_caught value = 0, limit == 1: FAILED",
            ],
        ),
        # No contender outlived its TTL: nothing overlapped, the lock checker caught
        # nothing, and the run passed.
        (
            "scenarios.redis_locks.stale=[]",
            [
                "unfenced_caught value = 0, limit == 1: FAILED",
                "give stale at least one contender index",
            ],
        ),
    ],
)
def test_a_race_scenario_that_shows_no_race_fails(
    shared_services: Endpoints,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    override: str,
    failures: list[str],
) -> None:
    scenario = override.split(".")[1]
    argv = ["run", "-s", scenario, "--set", override, "--results-db", "off", "--no-progress"]
    code = main([*argv, "--results-dir", str(tmp_path)])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 1, out
    for failure in failures:
        assert failure in out
    (reported,) = _report(tmp_path)["scenarios"]
    assert reported["verdict"] == "failed"


def test_unknown_scenario_parameter_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "squall.toml").write_text("[scenarios.websocket_concurrency]\nmesages = 3\n")
    monkeypatch.chdir(tmp_path)
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert "[scenarios.websocket_concurrency] has no parameter 'mesages'" in err
    assert "messages" in err


def test_scenario_parameters_reach_the_scenario(
    shared_services: Endpoints, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "run",
            "-s",
            "websocket_concurrency",
            "--scale",
            "0.05",
            "--progress",
            "--results-dir",
            str(tmp_path),
            "--set",
            "scenarios.websocket_concurrency.messages=2",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    # --progress asked for off a terminal: one plain line a second, then the scenario's total.
    assert "[   1.0s] users " in out
    assert "websocket_concurrency: " in out
    assert " process(es), sent " in out
    (scenario,) = _report(tmp_path)["scenarios"]
    sockets = scenario["metrics"]["ws_connect"]["count"]
    assert sockets == 4  # 75 users x 0.05
    assert scenario["metrics"]["messages_sent"]["count"] == 2 * sockets


@pytest.mark.parametrize(
    ("sig", "reason"), [(signal.SIGINT, "sigint"), (signal.SIGTERM, "sigterm")], ids=str
)
def test_ctrl_c_or_sigterm_stops_the_suite_and_keeps_partial_results(
    shared_services: Endpoints, tmp_path: Path, sig: signal.Signals, reason: str
) -> None:
    # SIGTERM (a CI job cancelled, `kill`) is handled as Ctrl-C is.
    env = {**os.environ, "SQUALL_RESULTS_DB": "off"}
    argv = [sys.executable, "-m", "squall", "run", "--no-progress", "--scale", "0.05"]
    argv += [
        "--results-dir",
        str(tmp_path),
        "--set",
        "scenarios.websocket_concurrency.messages=5000",
    ]
    child = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    assert child.stdout is not None
    for line in child.stdout:
        if "reference platform up" in line:
            break
    # The first scenario (4 users x 5,000 messages, minutes of work) is running by now.
    time.sleep(6)
    child.send_signal(sig)
    rest = child.stdout.read()
    assert child.wait(60) == 130, rest
    assert f"interrupted ({reason}): partial results" in rest
    report = _report(tmp_path)
    assert report["interrupted"] is True
    scenarios = report["scenarios"]
    assert isinstance(scenarios, list)
    assert [s["name"] for s in scenarios] == ["websocket_concurrency"]
    sent = scenarios[0]["metrics"]["messages_sent"]["count"]
    assert 0 < sent < 4 * 5000


def test_ctrl_c_once_the_suite_has_ended_keeps_the_whole_run(
    shared_services: Endpoints, tmp_path: Path
) -> None:
    # Pressed while squall stopped its platform (a second Ctrl-C, say), it lost the whole
    # run: no summary, no report, and the platform's Redis keys left behind.
    env = {**os.environ, "SQUALL_RESULTS_DB": "off"}
    argv = [sys.executable, "-m", "squall", "run", "--no-progress", "--scale", "0.05"]
    argv += ["-s", "websocket_concurrency", "--results-dir", str(tmp_path)]
    argv += ["--set", "scenarios.websocket_concurrency.messages=2"]
    child = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    assert child.stdout is not None
    seen = []
    for line in child.stdout:
        seen.append(line)
        if "websocket_concurrency passed in" in line:
            break
    time.sleep(0.3)  # the suite has returned: the platform is stopping
    child.send_signal(signal.SIGINT)
    for line in child.stdout:
        seen.append(line)
        if "writing the results first" in line:
            break
    # A second one, as an impatient user presses it, while squall finishes or as it exits.
    child.send_signal(signal.SIGINT)
    rest = "".join(seen) + child.stdout.read()
    # Landing as the interpreter exits, where Python has put back the default handler, a
    # Ctrl-C kills the process by SIGINT: a shell reports that as 130 too.
    assert child.wait(60) in (130, -signal.SIGINT), rest
    flat = " ".join(rest.split())
    assert "interrupted while finishing: the run had ended and its results are whole" in flat
    report = _report(tmp_path)
    assert report["interrupted"] is False
    (scenario,) = report["scenarios"]
    assert scenario["verdict"] == "passed"


def test_scenario_parameter_of_the_wrong_type_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["run", "--results-dir", str(tmp_path), "--set", 'scenarios.db_race.writers="many"']
    )
    assert code == 2
    assert "[scenarios.db_race] writers = 'many': expected int" in capsys.readouterr().err


def test_agent_context_builds_large_contexts_without_errors(
    shared_services: Endpoints, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "-s", "agent_context", "--scale", "0.12", "--no-progress"]
    code = main([*argv, "--results-dir", str(tmp_path)])
    assert code == 0, capsys.readouterr().out
    (scenario,) = _report(tmp_path)["scenarios"]
    metrics = scenario["metrics"]
    assert metrics["errors"]["count"] == 0
    assert not [name for name in metrics if name.startswith("errors.")]
    assert metrics["context_large_enough"]["passes"] == 3  # 25 users x 0.12
    assert metrics["context_chars_measured"]["min"] >= 2000


def test_a_scale_past_db_race_writers_cap_runs_capped_with_a_note(
    shared_services: Endpoints, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "-s", "db_race", "--scale", "2", "--results-dir", str(tmp_path)]
    code = main([*argv, "--results-db", "off", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "writers capped at 32 (scale 2 asks for 40)" in out
    (scenario,) = _report(tmp_path)["scenarios"]
    assert scenario["name"] == "db_race"


def test_platform_settings_reach_the_platform_squall_starts(
    shared_services: Endpoints, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A deliberately broken build, from the command line: every event goes to every socket.
    code = main(
        [
            "run",
            "-s",
            "platform_races",
            "--set",
            "scenarios.platform_races.parts=['users']",
            "--set",
            "platform.faults='broadcast_events'",
            "--scale",
            "0.25",
            "--results-dir",
            str(tmp_path),
            "--results-db",
            "off",
            "--no-progress",
        ]
    )
    out = " ".join(capsys.readouterr().out.split())
    assert code == 1, out
    report = _report(tmp_path)
    config = report["config"]
    assert isinstance(config, dict)
    assert config["platform"]["faults"] == "broadcast_events"
    assert config["platform"]["run_concurrency"] == "64"  # the golden path's, kept
    (scenario,) = report["scenarios"]
    verdicts = scenario["result"]["verdicts"]
    assert verdicts["isolation"]["valid"] is False
    assert {e["kind"] for e in verdicts["isolation"]["evidence"]} == {"foreign-event"}


def test_platform_settings_unused_against_a_target_say_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Only the note matters here: the target is not there, so the run stops with exit 3.
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    code = main(
        [
            "run",
            "-s",
            "websocket_concurrency",
            "--target",
            f"ws://127.0.0.1:{port}/v1/ws",
            "--jwt-secret",
            "s" * 32,
            "--set",
            "platform.faults='naive_billing'",
            "--results-dir",
            str(tmp_path),
            "--results-db",
            "off",
        ]
    )
    out = " ".join(capsys.readouterr().out.split())
    assert code == 3
    assert "squall: [platform] settings are not used: --target names the platform" in out
