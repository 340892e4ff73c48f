"""The golden-path websocket_concurrency scenario, unchanged, against a plain echo service.

The echo service (``python -m squall.adapters.echo_server``) runs as a real
child process on a free loopback port; ``squall run --adapter echo`` drives it
and must say that ordering, isolation and delivery were not applicable rather
than passed.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from squall.cli import main
from squall.services.embedded import free_port
from squall.services.process import spawn, wait_until

pytestmark = pytest.mark.integration


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _report(results: Path) -> dict[str, Any]:
    """The report.json of the one run written under ``results``."""
    (path,) = results.glob("*/report.json")
    report: dict[str, Any] = json.loads(path.read_text())
    return report


@pytest.fixture
def echo_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    argv = [sys.executable, "-m", "squall.adapters.echo_server", "--port", str(port)]
    process = spawn("echo server", argv, log_path=tmp_path / "echo.log")
    try:
        wait_until(
            lambda: _healthy(f"http://127.0.0.1:{port}/healthz"),
            process=process,
            timeout=30,
            what="answering /healthz",
        )
        yield f"ws://127.0.0.1:{port}/"
    finally:
        process.stop()


@pytest.mark.usefixtures("shared_services")
def test_websocket_concurrency_runs_against_the_echo_service(
    echo_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code = main(
        [
            "run",
            "--adapter",
            "echo",
            "--target",
            echo_url,
            "--scenario",
            "websocket_concurrency",
            "--scale",
            "0.1",
            "--results-dir",
            str(tmp_path / "results"),
            "--no-progress",
        ]
    )
    assert code == 0
    report = _report(tmp_path / "results")
    assert report["config"]["adapter"] == "echo"
    (scenario,) = report["scenarios"]
    metrics = scenario["metrics"]
    users = max(1, round(75 * 0.1))
    assert metrics["messages_sent"]["count"] == users * 15
    assert (metrics["success"]["passes"], metrics["success"]["total"]) == (users * 15, users * 15)
    assert metrics["response_time"]["count"] == users * 15
    # Each socket stays open until the last batch is in: every user was running at once,
    # though the echo answers each one's messages long before the next batch starts.
    assert metrics["users"]["value"] == users
    for absent in ("violations", "delivery", "seq_gaps", "isolation_leaks", "ack_time"):
        assert absent not in metrics
    status = {t["metric"]: t["status"] for t in scenario["thresholds"]}
    assert status["violations"] == "not_applicable"
    assert status["success"] == "passed"
    notes = " ".join(scenario["notes"])
    for check in ("ordering: not applicable", "isolation: not applicable", "delivery: not"):
        assert check in notes


@pytest.mark.usefixtures("shared_services")
def test_echo_adapter_without_target_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--adapter", "echo", "--no-progress"]) == 2
    assert "needs --target" in capsys.readouterr().err


def test_unknown_adapter_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--adapter", "ech", "--target", "ws://127.0.0.1:9/"]) == 2
    assert "unknown adapter 'ech'" in capsys.readouterr().err


@pytest.mark.usefixtures("shared_services")
def test_the_wrong_adapter_is_named_by_the_frames_it_could_not_match(
    echo_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The reference protocol's adapter against the echo service: every message comes back
    # unchanged, which that adapter matches to nothing, so each one times out.
    monkeypatch.chdir(tmp_path)
    code = main(
        [
            "run",
            "--target",
            echo_url,
            "--jwt-secret",
            "x" * 40,
            "--scenario",
            "websocket_concurrency",
            "--scale",
            "0.05",
            "--set",
            "scenarios.websocket_concurrency.messages=1",
            "--set",
            "scenarios.websocket_concurrency.timeout_s=0.5",
            "--results-db",
            "off",
            "--no-progress",
        ]
    )
    assert code == 1
    out = " ".join(capsys.readouterr().out.split())
    users = max(1, round(75 * 0.05))
    assert f"timeouts: {users} (no answer within the timeout)" in out
    assert f"errors: protocol {users}" in out
    assert "the 'squall' adapter does not recognise: does the target speak its protocol" in out
    (scenario,) = _report(tmp_path / "squall-results")["scenarios"]
    (errors,) = scenario["result"]["errors"]
    assert errors["kind"] == "protocol"
    assert 'First frame: {"type": "user_message"' in errors["samples"][0]


@pytest.mark.usefixtures("shared_services")
def test_platform_specific_steps_are_left_out_for_another_protocol(
    echo_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # agent_context's preferences are the reference platform's REST API, and
    # platform_races drives that platform's own protocol: against echo the first chats
    # without them, the second is not run, and neither raises or waits for a hello.
    monkeypatch.chdir(tmp_path)
    args = ["run", "--adapter", "echo", "--target", echo_url, "--scale", "0.1"]
    code = main([*args, "-s", "agent_context", "-s", "platform_races", "--results-db", "off"])
    assert code == 0
    assert "platform_races not run" in capsys.readouterr().out
    context, races = _report(tmp_path / "squall-results")["scenarios"]
    users = max(1, round(25 * 0.1))
    assert context["metrics"]["messages_sent"]["count"] == users * 4
    assert context["metrics"]["errors"]["count"] == 0
    assert not [name for name in context["metrics"] if name.startswith("errors.")]
    assert races["metrics"] == {}
    assert races["duration_s"] == 0.0
    assert races["ran"] is False
    assert context["ran"] is True
    assert {t["status"] for t in races["thresholds"]} == {"not_applicable"}
    assert "not run: platform_races drives the reference platform's own protocol" in " ".join(
        races["notes"]
    )
