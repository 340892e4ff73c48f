"""An iteration that raises is counted by the exception's kind, with the fix when known."""

from __future__ import annotations

from squall.engine import Scenario, Session, closed, run_scenario


def plain(session: Session) -> None:  # not async: returns None, which cannot be awaited
    pass


async def awaits_none(session: Session) -> None:
    await None  # type: ignore[misc]  # a TypeError inside the behaviour itself


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
        "TypeError: behaviour 'plain' returned what cannot be awaited (object NoneType can't "
        "be used in 'await' expression); define it with 'async def'"
    )


async def test_a_type_error_inside_a_behaviour_is_reported_as_it_is() -> None:
    count, samples = await _samples(awaits_none)
    assert count == 2
    assert samples[0] == "TypeError: object NoneType can't be used in 'await' expression"
