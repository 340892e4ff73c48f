"""A load scenario that measured nothing fails instead of passing on thresholds that
are all not applicable."""

from __future__ import annotations

from squall.metrics.thresholds import OutcomeStatus, Verdict
from squall.suite import nothing_measured


def test_a_run_with_an_iteration_or_a_message_is_left_to_its_thresholds() -> None:
    assert nothing_measured("s", iterations=1, answered=0, interrupted=0, errors=0) == []
    # A long iteration cut by --duration still measured the messages answered.
    assert nothing_measured("s", iterations=0, answered=3, interrupted=5, errors=0) == []


def test_iterations_still_waiting_at_the_end_fail_and_say_what_to_check() -> None:
    (outcome,) = nothing_measured("wsc", iterations=0, answered=0, interrupted=2, errors=0)
    assert outcome.status is OutcomeStatus.FAILED
    assert (outcome.metric, outcome.expression, outcome.observed) == ("iterations", "count > 0", 0)
    assert outcome.diagnostic.startswith("[wsc] iterations count = 0, limit > 0: FAILED")
    assert "no iteration ended and no message was answered, so nothing was measured" in (
        outcome.diagnostic
    )
    assert "2 iteration(s) still waiting when the run ended" in outcome.diagnostic
    assert "does it speak the adapter's protocol?" in outcome.diagnostic
    assert not Verdict.of([outcome]).ok


def test_errors_and_a_run_that_never_started_are_named() -> None:
    (errors,) = nothing_measured("s", iterations=0, answered=0, interrupted=0, errors=4)
    assert "4 error(s), listed above" in errors.diagnostic
    (idle,) = nothing_measured("s", iterations=0, answered=0, interrupted=0, errors=0)
    assert "no iteration started" in idle.diagnostic


def test_db_race_fails_when_nothing_was_debited_or_naive_was_not_caught() -> None:
    from squall.metrics.result import Counter, Gauge
    from squall.suite import race_shown

    caught = Gauge("naive_caught", 1.0, 1.0, 1.0)
    missed = Gauge("naive_caught", 0.0, 0.0, 0.0)
    debited = Counter("operations", 40, None)
    none = Counter("operations", 0, None)
    assert Verdict.of(race_shown({"operations": debited, "naive_caught": caught})).ok
    # Without naive among the strategies, only the debits are checked.
    assert [o.metric for o in race_shown({"operations": debited})] == ["operations"]
    failed = race_shown({"operations": none, "naive_caught": missed})
    assert [(o.metric, o.status) for o in failed] == [
        ("operations", OutcomeStatus.FAILED),
        ("naive_caught", OutcomeStatus.FAILED),
    ]
    assert "is initial_balance at least amount?" in failed[0].diagnostic
    assert "naive read-modify-write lost no update" in failed[1].diagnostic


def test_platform_races_fails_when_no_run_ended_or_no_checker_judged() -> None:
    # A platform that refused every message (no credits), or a run of parts whose every
    # checker was not applicable, passed: nothing was judged.
    from squall.metrics.result import Counter
    from squall.suite import platform_shown

    def shown(ended: int, applicable: int) -> list[tuple[str, OutcomeStatus]]:
        metrics = {
            "runs_ended": Counter("runs_ended", ended, None),
            "checkers_applicable": Counter("checkers_applicable", applicable, None),
        }
        return [(o.metric, o.status) for o in platform_shown(metrics)]

    assert shown(12, 7) == [
        ("runs_ended", OutcomeStatus.PASSED),
        ("checkers_applicable", OutcomeStatus.PASSED),
    ]
    assert shown(0, 7)[0] == ("runs_ended", OutcomeStatus.FAILED)
    assert shown(12, 0)[1] == ("checkers_applicable", OutcomeStatus.FAILED)
    metrics = {
        "runs_ended": Counter("runs_ended", 0, None),
        "checkers_applicable": Counter("checkers_applicable", 3, None),
    }
    (refused, _) = platform_shown(metrics)
    assert "was every message refused" in refused.diagnostic
