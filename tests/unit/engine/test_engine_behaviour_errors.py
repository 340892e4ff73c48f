"""An iteration that raises is counted by the exception's kind, with the fix when known."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from squall.engine import (
    Behaviour,
    Scenario,
    Session,
    Workload,
    closed,
    open_rate,
    run,
    run_scenario,
)
from squall.engine.errors import ScenarioError, describe


def plain(session: Session) -> None:  # not async: returns None, which cannot be awaited
    pass


async def awaits_none(session: Session) -> None:
    await None  # type: ignore[misc]  # a TypeError inside the behaviour itself


LINE_OF_AWAIT = awaits_none.__code__.co_firstlineno + 1


async def _samples(behaviour: object) -> tuple[int, list[str]]:
    scenario = Scenario("errors", behaviour, closed(1, iterations=2))  # type: ignore[arg-type]
    result = await run_scenario(scenario, processes=1, progress=False)
    (summary,) = result.errors
    assert summary.kind == "TypeError"
    return summary.count, list(summary.samples)


async def test_a_plain_def_behaviour_is_named_with_the_fix() -> None:
    count, samples = await _samples(plain)
    assert count == 2
    assert samples[0] == (
        "behaviour 'plain' returned what cannot be awaited (object NoneType can't "
        "be used in 'await' expression); define it with 'async def'"
    )


async def test_a_type_error_inside_a_behaviour_is_reported_as_it_is() -> None:
    count, samples = await _samples(awaits_none)
    assert count == 2
    assert samples[0].startswith("object NoneType can't be used in 'await' expression (at ")
    assert samples[0].endswith(f"test_engine_behaviour_errors.py:{LINE_OF_AWAIT} in awaits_none)")


def test_a_sample_names_the_innermost_frame_of_the_user_code() -> None:
    def user_code() -> None:
        json.loads("{")  # raised inside the standard library, called from here

    try:
        user_code()
    except ValueError as exc:
        sample = describe(exc)
    line = user_code.__code__.co_firstlineno + 1
    assert sample.startswith("Expecting property name enclosed in double quotes")
    assert sample.endswith(f"test_engine_behaviour_errors.py:{line} in user_code)")


def test_a_frame_without_a_file_is_passed_over() -> None:
    def user_code() -> None:
        exec(compile("raise ValueError('from a string')", "<string>", "exec"))

    try:
        user_code()
    except ValueError as exc:
        sample = describe(exc)
    line = user_code.__code__.co_firstlineno + 1
    assert sample.endswith(f"test_engine_behaviour_errors.py:{line} in user_code)")


def test_an_exception_without_message_or_traceback() -> None:
    assert describe(RuntimeError()) == "(no message)"


class OwnBaseError(BaseException):
    """A scenario's own exception that derives from BaseException, not Exception."""


def _raising(exc: BaseException) -> Behaviour:
    async def behaviour(session: Session) -> None:
        session.recorder.count("reached")
        raise exc

    return behaviour


@pytest.mark.parametrize(
    "exc", [KeyboardInterrupt(), SystemExit(3), OwnBaseError("own"), GeneratorExit()]
)
@pytest.mark.parametrize("workload", [closed(2, iterations=3), open_rate(60.0, 0.1, 2)])
def test_a_base_exception_from_a_behaviour_is_counted_and_the_run_goes_on(
    exc: BaseException, workload: Workload
) -> None:
    scenario = Scenario("base", _raising(exc), workload, graceful_stop_s=1.0)
    try:
        # Synchronous: an exception that escapes the event loop itself comes out here.
        result = run(scenario, processes=1, progress=False, deadline_s=10.0)
    except BaseException as escaped:  # what the run must not let through
        pytest.fail(f"the run raised {escaped!r} instead of counting it")
    kind = type(exc).__name__
    reached = result.count("reached")
    assert reached >= 2
    assert result.count(f"errors.{kind}") == reached
    assert result.count("interrupted_iterations") == 0
    (summary,) = result.errors
    assert summary.kind == kind
    assert f"{kind} is a BaseException, which would stop the whole run" in summary.samples[0]
    assert "test_engine_behaviour_errors.py" in summary.samples[0]


async def test_a_cancelled_task_a_behaviour_awaited_is_an_error_not_an_interruption() -> None:
    async def awaits_a_cancelled_task(session: Session) -> None:
        task = asyncio.create_task(asyncio.sleep(10))
        await asyncio.sleep(0)
        task.cancel()
        await task

    scenario = Scenario("cancelled", awaits_a_cancelled_task, closed(2, iterations=3))
    result = await run_scenario(scenario, processes=1, progress=False, deadline_s=10.0)
    assert result.count("errors.CancelledError") == 6
    assert result.count("iterations") == 6
    assert result.count("interrupted_iterations") == 0
    (summary,) = result.errors
    assert (
        "the behaviour was not cancelled: a task or future it awaited was" in (summary.samples[0])
    )


async def test_a_behaviour_cancelled_at_the_deadline_is_interrupted_not_an_error() -> None:
    async def waits(session: Session) -> None:
        await asyncio.Event().wait()

    scenario = Scenario("waits", waits, closed(2, iterations=1), graceful_stop_s=0.0)
    result = await run_scenario(scenario, processes=1, progress=False, deadline_s=0.2)
    assert result.interrupted_reason == "deadline"
    assert result.count("interrupted_iterations") == 2
    assert result.errors == ()


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("async def chat(session)\n    pass\n", "raised SyntaxError: expected ':'"),
        (
            "undefined_name\n\nasync def chat(session):\n    pass\n",
            "raised NameError: name 'undefined_name' is not defined (at ",
        ),
    ],
)
def test_a_behaviour_module_that_fails_to_import_is_a_scenario_error(
    source: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_behaviours.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    scenario = Scenario("broken", "broken_behaviours:chat", closed(1, iterations=1))
    with pytest.raises(ScenarioError) as raised:
        scenario.resolve_behaviour()
    text = str(raised.value)
    assert text.startswith(
        "cannot import module 'broken_behaviours' of behaviour 'broken_behaviours:chat': it "
    )
    assert message in text
    assert text.endswith("; fix the module")


async def test_a_misspelt_behaviour_is_one_scenario_error_with_worker_processes_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With two worker processes each failed to find it: a WorkerFailed of two tracebacks.
    (tmp_path / "spelt_behaviours.py").write_text("async def chat(session):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    scenario = Scenario("typo", "spelt_behaviours:caht", closed(2, iterations=1))
    with pytest.raises(ScenarioError, match="caht"):
        await run_scenario(scenario, processes=2, progress=False)


@pytest.mark.parametrize("processes", [2.5, True, 0])
async def test_a_process_count_that_is_no_whole_number_is_refused(processes: Any) -> None:
    scenario = Scenario("count", "spelt_behaviours:chat", closed(2, iterations=1))
    with pytest.raises(ScenarioError, match="must be a whole number >= 1"):
        await run_scenario(scenario, processes=processes, progress=False)


async def yields_messages(session: Session) -> AsyncIterator[None]:
    yield None


def yields_plainly(session: Session) -> Iterator[None]:
    yield None


@pytest.mark.parametrize("behaviour", [yields_messages, yields_plainly])
async def test_a_generator_behaviour_is_refused_before_the_run(behaviour: Any) -> None:
    # It was told to "define it with 'async def'" at every iteration, although it was one.
    scenario = Scenario("gen", behaviour, closed(1, iterations=1))
    with pytest.raises(ScenarioError, match=r"is a generator \(it has 'yield'\)"):
        await run_scenario(scenario)


async def _task_group_failing(errors: list[BaseException]) -> None:
    async def fail(exc: BaseException) -> None:
        raise exc

    async with asyncio.TaskGroup() as group:
        for exc in errors:
            group.create_task(fail(exc))


def test_an_exception_group_is_described_by_what_it_holds() -> None:
    errors: list[BaseException] = [ConnectionRefusedError(f"refused {n}") for n in range(3)]
    errors.append(TimeoutError("slow"))
    with pytest.raises(ExceptionGroup) as caught:
        asyncio.run(_task_group_failing(errors))
    text = describe(caught.value)
    assert text.startswith(
        "unhandled errors in a TaskGroup (3 ConnectionRefusedError, 1 TimeoutError); "
        "the first: ConnectionRefusedError: refused 0 (at "
    ), text
    assert "in fail)" in text


def test_a_group_inside_a_group_is_described_by_its_leaves() -> None:
    inner = ExceptionGroup("inner", [ValueError("deep")])
    outer = ExceptionGroup("outer", [inner, KeyError("k")])
    assert describe(outer) == "outer (1 ValueError, 1 KeyError); the first: ValueError: deep"


class FailingIdentities:
    def __call__(self, index: int) -> Any:
        raise LookupError(f"no account for user {index}")


async def nothing(session: Session) -> None:
    pass


@pytest.mark.parametrize(
    "workload",
    [closed(2, iterations=1), open_rate(20, 0.2, max_users=2)],
    ids=["closed", "open"],
)
async def test_an_identity_factory_that_raises_is_counted_per_user(workload: Workload) -> None:
    # It was swallowed (a closed run reported no error, only asyncio's "Task exception was
    # never retrieved") or escaped the run as a bare KeyError (the open model).
    seen: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: seen.append(context))
    scenario = Scenario("ids", nothing, workload, identities=FailingIdentities())  # type: ignore[arg-type]
    result = await run_scenario(scenario, processes=1, progress=False)
    (summary,) = result.errors
    assert summary.kind == "identity"
    assert summary.count == 2
    assert (
        "the identity factory raised for user 0: LookupError: no account for user 0"
        in (summary.samples[0])
    )
    assert result.count("iterations") == 0
    assert seen == []


def user_names(index: int) -> str:
    return f"user-{index}"  # the mistake: a name, not an Identity


async def opens_a_socket(session: Session) -> None:
    session.identity.auth_headers()


async def test_an_identity_factory_that_returns_no_identity_is_named() -> None:
    # Every iteration failed with "'str' object has no attribute 'auth_headers'", at the
    # behaviour's line.
    scenario = Scenario("ids", opens_a_socket, closed(2, iterations=1), identities=user_names)  # type: ignore[arg-type]
    result = await run_scenario(scenario, processes=1, progress=False)
    (summary,) = result.errors
    assert (summary.kind, summary.count) == ("identity", 2)
    assert summary.samples[0] == (
        "the identity factory returned str 'user-0' for user 0, not an "
        "Identity(user_id, token, index)"
    )
    assert result.count("iterations") == 0


def test_a_behaviour_that_is_neither_a_function_nor_a_path_is_refused_when_made() -> None:
    # It ran, every iteration failing with "'int' object is not callable".
    with pytest.raises(ScenarioError, match=r"behaviour=42 is neither an 'async def' function"):
        Scenario("num", 42, closed(1, iterations=1))  # type: ignore[arg-type]


@pytest.mark.parametrize("deadline", [0, -1, float("nan"), float("inf")])
async def test_a_deadline_that_is_no_deadline_is_refused(deadline: float) -> None:
    # 0, -1 and NaN ended the run at once as interrupted; inf left it without a hard deadline.
    scenario = Scenario("deadline", nothing, closed(1, iterations=1))
    with pytest.raises(ScenarioError, match="must be a finite number of seconds > 0"):
        await run_scenario(scenario, processes=1, progress=False, deadline_s=deadline)


async def test_a_scenario_that_cannot_be_pickled_names_the_part() -> None:
    # Unpicklable params were blamed on "its behaviour or identity factory".
    scenario = Scenario(
        "lock",
        "squall.scenarios.websocket_concurrency:behaviour",
        closed(2, iterations=1),
        params={"callback": lambda: None},
    )
    assert scenario.unpicklable() == ["params"]
    with pytest.raises(ScenarioError) as raised:
        await run_scenario(scenario, processes=2, progress=False)
    message = str(raised.value)
    assert "its params cannot be pickled; keep params to plain values" in message
    assert "behaviour" not in message


_SLOW_TO_EXIT = """
import atexit, multiprocessing, os, pathlib, time

async def chat(session):
    session.recorder.count("reached")

def _slow_exit():
    pathlib.Path(os.environ["SQUALL_TEST_EXITING"]).write_text("exiting")
    time.sleep(4)

if multiprocessing.parent_process() is not None:  # in a worker only
    atexit.register(_slow_exit)
"""


async def test_a_ctrl_c_while_the_workers_exit_keeps_the_whole_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Once the load was over, a Ctrl-C while the workers exited (seconds, joined one by
    # one) raised out of the run: the scenario and all it measured were lost.
    (tmp_path / "slow_exit_behaviours.py").write_text(_SLOW_TO_EXIT)
    monkeypatch.syspath_prepend(str(tmp_path))
    exiting = tmp_path / "exiting"
    monkeypatch.setenv("SQUALL_TEST_EXITING", str(exiting))

    def interrupt_once_a_worker_exits() -> None:
        deadline = time.monotonic() + 60
        while not exiting.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        # Its report is in: once the parent has read it, it joins the workers (4 s each).
        time.sleep(1.5)
        os.kill(os.getpid(), signal.SIGINT)

    watcher = threading.Thread(target=interrupt_once_a_worker_exits, daemon=True)
    watcher.start()
    scenario = Scenario("late", "slow_exit_behaviours:chat", closed(2, iterations=1))
    after_load: list[str] = []
    result = await run_scenario(
        scenario, processes=2, progress=False, stopped_after_load=after_load
    )
    watcher.join(10)
    assert after_load == ["sigint"]
    assert not result.interrupted
    assert result.count("reached") == 2


@pytest.mark.parametrize("params", [[1, 2], None, "messages=10"])
def test_params_that_are_no_mapping_are_refused_when_the_scenario_is_made(params: Any) -> None:
    # Taken, the whole load ran, then dict(params) raised a TypeError naming neither.
    with pytest.raises(ScenarioError, match=r"params=.* not a mapping of names to values"):
        Scenario("odd", "spelt_behaviours:chat", closed(1, iterations=1), params=params)


async def test_a_worker_that_exits_by_itself_is_not_blamed_on_a_signal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # os._exit(7) read "(the kernel's out-of-memory killer, or a signal sent to it)".
    (tmp_path / "exiting_behaviours.py").write_text(
        "import os\n\nasync def chat(session):\n    if session.identity.index == 0:\n"
        "        os._exit(7)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    scenario = Scenario("exits", "exiting_behaviours:chat", closed(2, iterations=1))
    result = await run_scenario(scenario, processes=2, progress=False)
    (sample,) = [e.samples[0] for e in result.errors if "exited with code 7" in e.samples[0]]
    assert "it ended by itself (os._exit" in sample
    assert "out-of-memory" not in sample
