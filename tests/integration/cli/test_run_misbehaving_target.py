"""``squall run`` against targets that misbehave, and a scenario that raises.

A target that closes every socket mid-chat, answers with frames that are not
JSON, refuses every upgrade or never answers must fail the run (exit 1) with
its errors counted by kind — never pass because no message was judged. A
scenario that raises must not lose what the suite already recorded.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.http11 import Request, Response
from websockets.sync.server import ServerConnection, serve

from squall.cli import main
from squall.config import load_config
from squall.report.publish import publish
from squall.scenarios.target import TargetInfo
from squall.services import Endpoints
from squall.suite import SCENARIOS, ScenarioOutcome, SuiteContext, SuiteEntry, run_suite

pytestmark = pytest.mark.integration

SECRET = "a-test-secret-long-enough-for-hs256-keys"
#: ``--scale 0.04`` makes websocket_concurrency's 75 users three sockets.
SOCKETS = 3
MESSAGES = 2


@pytest.fixture
def shared_services(shared_services: Endpoints, monkeypatch: pytest.MonkeyPatch) -> Endpoints:
    """The session's servers (tests/conftest.py), and no results database."""
    monkeypatch.setenv("SQUALL_RESULTS_DB", "off")
    return shared_services


@contextlib.contextmanager
def _misbehaving(mode: str) -> Iterator[str]:
    upgrades: list[Request] = []

    def handler(ws: ServerConnection) -> None:
        if mode == "greets":  # a hello, as the reference platform's, then silence
            ws.send(json.dumps({"type": "hello"}))
        for message in ws:
            if mode == "close":
                ws.close(1011, "going away mid-chat")
                return
            if mode == "garbage":
                ws.send("this is not json")
            if mode == "full":
                ws.send(message)
            if mode == "wrong_id":  # answers each message with another one's id
                frame = json.loads(message)
                ws.send(json.dumps({**frame, "client_msg_id": f"not-{frame['client_msg_id']}"}))
            if mode == "late":  # answers each message after its timeout, in order
                time.sleep(1.5)
                ws.send(message)
            # "silent": read and never answer

    def process_request(conn: ServerConnection, request: Request) -> Response | None:
        upgrades.append(request)
        if mode == "reject":
            return conn.respond(401, "bad token\n")
        if mode == "full" and len(upgrades) > 1:
            return conn.respond(503, "no more connections\n")  # it takes only one
        return None

    server = serve(handler, "127.0.0.1", 0, process_request=process_request)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}/v1/ws"
    finally:
        server.shutdown()
        thread.join(10)


def _run(url: str, results: Path, *extra: str) -> int:
    return main(
        [
            "run",
            "--target",
            url,
            "--jwt-secret",
            SECRET,
            "--scale",
            "0.04",
            "--no-progress",
            "--results-dir",
            str(results),
            "--set",
            f"scenarios.websocket_concurrency.messages={MESSAGES}",
            "--set",
            "scenarios.websocket_concurrency.timeout_s=0.5",
            *extra,
        ]
    )


def _metrics(results: Path) -> dict[str, Any]:
    (path,) = results.glob("*/report.json")
    (scenario,) = json.loads(path.read_text())["scenarios"]
    metrics: dict[str, Any] = scenario["metrics"]
    return metrics


@pytest.mark.parametrize(
    ("mode", "error"),
    [("close", "errors.closed"), ("garbage", "errors.protocol"), ("reject", "errors.connect")],
)
@pytest.mark.usefixtures("shared_services")
def test_a_target_that_drops_every_chat_fails_the_run(
    mode: str, error: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with _misbehaving(mode) as url:
        code = _run(url, tmp_path, "-s", "websocket_concurrency")
    out = capsys.readouterr().out
    assert code == 1, out
    assert "success rate = 0, limit >= 0.9: FAILED" in out
    metrics = _metrics(tmp_path)
    # Every planned message fails: the one cut off (or never sent, the socket never
    # opening) and the ones the chat never got to.
    assert metrics["success"]["total"] == SOCKETS * MESSAGES
    assert metrics["success"]["passes"] == 0
    assert metrics[error]["count"] == SOCKETS


@pytest.mark.usefixtures("shared_services")
def test_a_target_that_takes_only_one_socket_fails_the_run_and_says_it_turned_them_away(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with _misbehaving("full") as url:
        code = _run(url, tmp_path, "-s", "websocket_concurrency", "--adapter", "echo")
    out = " ".join(capsys.readouterr().out.split())
    assert code == 1, out
    assert "success rate = 0.3333, limit >= 0.9: FAILED" in out
    assert "HTTP 503" in out
    assert "the target turned the connection away" in out
    metrics = _metrics(tmp_path)
    # The socket it took chatted; the others' messages all failed.
    assert (metrics["success"]["passes"], metrics["success"]["total"]) == (
        MESSAGES,
        SOCKETS * MESSAGES,
    )
    assert metrics["errors.connect"]["count"] == SOCKETS - 1


@pytest.mark.usefixtures("shared_services")
def test_replies_naming_another_message_are_named_beside_the_timeouts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The adapter given by import path: the messages name it so, as the user wrote it.
    adapter = "squall.adapters.echo:EchoAdapter"
    with _misbehaving("wrong_id") as url:
        code = _run(url, tmp_path, "-s", "websocket_concurrency", "--adapter", adapter)
    out = " ".join(capsys.readouterr().out.split())
    assert code == 1, out
    assert f"timeouts: {SOCKETS * MESSAGES} (no answer within the timeout)" in out
    assert f"the {adapter!r} adapter matched to no message this socket sent: does the" in out
    metrics = _metrics(tmp_path)
    assert metrics["errors.protocol"]["count"] == SOCKETS * MESSAGES
    (path,) = tmp_path.glob("*/report.json")
    (errors,) = json.loads(path.read_text())["scenarios"][0]["result"]["errors"]
    assert 'First frame: {"type": "chat", ' in errors["samples"][0]


@pytest.mark.usefixtures("shared_services")
def test_a_scenario_that_reads_the_adapter_from_its_params_names_it_as_given_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # agent_context picks what it sends by the adapter: the socket's own is the one
    # the errors name, as the user wrote it, not its class's registered name.
    adapter = "squall.adapters.echo:EchoAdapter"
    with _misbehaving("wrong_id") as url:
        code = _run(
            url,
            tmp_path,
            "-s",
            "agent_context",
            "--adapter",
            adapter,
            "--set",
            "scenarios.agent_context.timeout_s=0.5",
        )
    out = " ".join(capsys.readouterr().out.split())
    assert code == 1, out
    assert f"the {adapter!r} adapter matched to no message this socket sent: does the" in out
    assert "the 'echo' adapter" not in out


@pytest.mark.usefixtures("shared_services")
def test_answers_after_the_timeout_are_timeouts_not_replies_to_another_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with _misbehaving("late") as url:
        code = _run(url, tmp_path, "-s", "websocket_concurrency", "--adapter", "echo")
    assert code == 1, capsys.readouterr().out
    metrics = _metrics(tmp_path)
    assert metrics["timeouts"]["count"] == SOCKETS * MESSAGES
    assert "errors.protocol" not in metrics


@pytest.mark.usefixtures("shared_services")
def test_a_silent_target_counts_one_timeout_per_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with _misbehaving("silent") as url:
        code = _run(url, tmp_path, "-s", "websocket_concurrency")
    assert code == 1, capsys.readouterr().out
    metrics = _metrics(tmp_path)
    assert metrics["success"]["total"] == SOCKETS * MESSAGES
    assert metrics["timeouts"]["count"] == SOCKETS * MESSAGES


@pytest.mark.usefixtures("shared_services")
def test_a_target_that_greets_and_never_answers_measured_nothing_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Its hellos were messages received, so the run "measured something" and passed with
    # every threshold not applicable when --duration ended it before any answer was due.
    with _misbehaving("greets") as url:
        code = _run(
            url,
            tmp_path,
            "-s",
            "websocket_concurrency",
            "--duration",
            "1",
            "--set",
            "scenarios.websocket_concurrency.timeout_s=30",
        )
    out = " ".join(capsys.readouterr().out.split())
    assert code == 1, out
    assert "no iteration ended and no message was answered, so nothing was measured" in out


async def test_a_scenario_that_raises_keeps_the_others_and_fails_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def boom(config: Any, ctx: SuiteContext) -> ScenarioOutcome:
        raise RuntimeError("the database went away")

    async def fine(config: Any, ctx: SuiteContext) -> ScenarioOutcome:
        return ScenarioOutcome(name="fine", metrics={}, outcomes=[])

    async def after(config: Any, ctx: SuiteContext) -> ScenarioOutcome:
        return ScenarioOutcome(name="after", metrics={}, outcomes=[])

    monkeypatch.setitem(SCENARIOS, "fine", SuiteEntry("fine", fine, "measures nothing"))
    monkeypatch.setitem(SCENARIOS, "boom", SuiteEntry("boom", boom, "raises"))
    monkeypatch.setitem(SCENARIOS, "after", SuiteEntry("after", after, "measures nothing"))
    config = load_config(
        cwd=tmp_path, overrides=['run.scenarios=["fine", "boom", "after"]', "run.results_dir=out"]
    )
    ctx = SuiteContext(
        target=TargetInfo(ws_url="ws://127.0.0.1:1/", http_url="http://127.0.0.1:1", jwt_secret=""),
        database_url="postgresql://unused",
        redis_url="redis://unused",
    )
    report = await run_suite(config, ctx, run_id="r1")
    assert [s.name for s in report.scenarios] == ["fine", "boom", "after"]
    where = f"test_run_misbehaving_target.py:{boom.__code__.co_firstlineno + 1} in boom)"
    error = report.scenarios[1].error
    assert error is not None
    assert error.startswith("RuntimeError: the database went away (at ")
    assert error.endswith(where)
    assert not report.verdict.ok

    from rich.console import Console

    code = publish(report, config, Console(width=200), environ={"SQUALL_RESULTS_DB": "off"})
    assert code == 1
    assert "[boom] raised RuntimeError: the database went away" in capsys.readouterr().out
    data = json.loads((tmp_path / "out" / "r1" / "report.json").read_text())
    assert data["verdict"]["ok"] is False
    assert data["verdict"]["failed"] == 1
    assert [s["verdict"] for s in data["scenarios"]] == ["passed", "failed", "passed"]
    assert data["scenarios"][1]["error"] == error
