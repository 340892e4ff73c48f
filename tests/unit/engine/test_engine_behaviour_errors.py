"""An iteration that raises is counted by the exception's kind, with the fix when known."""

from __future__ import annotations

import json

from squall.engine import Scenario, Session, closed, run_scenario
from squall.engine.errors import describe


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
