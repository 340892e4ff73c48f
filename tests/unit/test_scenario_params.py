"""``[scenarios.<name>]`` parameters are checked before a run: known, typed, in range."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from squall.config import load_config
from squall.suite import UnknownScenario, check_params


def _check(tmp_path: Path, override: str) -> None:
    check_params(load_config(cwd=tmp_path, overrides=[override]))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("scenarios.websocket_concurrency.users=-5", "users = -5: expected int > 0"),
        ("scenarios.websocket_concurrency.timeout_s=0", "timeout_s = 0: expected float > 0"),
        ("scenarios.redis_locks.ttl_ms=0", "ttl_ms = 0: expected int > 0"),
        ("scenarios.db_race.max_retries=-1", "max_retries = -1: expected int >= 0"),
        ("scenarios.websocket_concurrency.users=1.5", "users = 1.5: expected int"),
        # The scenarios' own ranges, checked before anything runs.
        ("scenarios.db_race.writers=500", "[scenarios.db_race] writers=500: need 2..32"),
        ("scenarios.db_race.subops=1", "subops=1: an update needs at least a read and a write"),
        (
            "scenarios.db_race.strategies=['atomic', 'nope']",
            "strategies=['atomic', 'nope']: expected a non-empty list of strategy names, "
            "from optimistic, row_lock, atomic, serializable, naive",
        ),
        ("scenarios.db_race.strategies='atomic'", "strategies='atomic': expected a non-empty"),
        ("scenarios.db_race.strategies=[]", "strategies=[]: expected a non-empty"),
        ("scenarios.db_race.naive_contention=3", "naive_contention=3: expected 0 (base), 1"),
        ("scenarios.db_race.naive_contention='barrier'", "naive_contention='barrier': expected"),
        ("scenarios.db_race.naive_contention=true", "naive_contention=True: expected 0 (base)"),
        ("scenarios.redis_locks.contenders=1", "contenders=1: a lock race needs at least 2"),
        ("scenarios.redis_locks.stale=[3]", "stale=[3]: each stale contender needs a successor"),
        ("scenarios.redis_locks.stale=['x']", "stale=['x']: each stale contender"),
        # The successor could not wait out the TTL before the stale contender gave up on it.
        (
            "scenarios.redis_locks.ttl_ms=20000",
            "ttl_ms=20000 with timeout_s=10: a successor waits out the TTL within timeout_s; "
            "pick ttl_ms at most 5000 or raise timeout_s to at least 40",
        ),
        (
            "scenarios.platform_races.parts=['redis_restat']",
            "parts=['redis_restat']: unknown part(s) 'redis_restat'; choose from same_thread,",
        ),
        ("scenarios.platform_races.timeout_s=0", "timeout_s = 0: expected float > 0"),
        ("scenarios.websocket_concurrency.timeout_s=nan", "timeout_s = nan: expected a finite"),
        ("scenarios.websocket_concurrency.timeout_s=inf", "timeout_s = inf: expected a finite"),
        # As TOML writes it, not as Python does.
        ("scenarios.websocket_concurrency.users=true", "users = true: expected int"),
        # An optional parameter given is of its type (it was passed to the database as is).
        ("scenarios.db_race.initial_balance='abc'", "initial_balance = 'abc': expected int"),
        ("scenarios.db_race.initial_balance=-3", "initial_balance = -3: expected int > 0"),
        # Past what PostgreSQL and Redis store: refused, not a failure midway.
        ("scenarios.db_race.amount=9223372036854775807", "expected int at most 2147483647"),
        ("scenarios.redis_locks.ttl_ms=2147483648", "ttl_ms = 2147483648: expected int at most"),
    ],
)
def test_out_of_range_values_are_refused(tmp_path: Path, override: str, message: str) -> None:
    with pytest.raises(UnknownScenario, match=re.escape(message)):
        _check(tmp_path, override)


@pytest.mark.parametrize(
    "override",
    [
        "scenarios.db_race.max_retries=0",  # a cap may be 0: no retries
        "scenarios.db_race.max_escalations=0",
        "scenarios.websocket_concurrency.users=1",
        "scenarios.websocket_concurrency.timeout_s=0.5",
        "scenarios.db_race.writers=32",
        "scenarios.redis_locks.stale=[0, 2]",
        "scenarios.redis_locks.ttl_ms=5000",
        "scenarios.db_race.strategies=['atomic', 'naive']",
        "scenarios.db_race.naive_contention=2",
    ],
)
def test_values_in_range_pass(tmp_path: Path, override: str) -> None:
    _check(tmp_path, override)
