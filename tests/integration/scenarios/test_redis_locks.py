"""redis_locks against a real Redis: unfenced overlaps are named, fencing prevents them."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from squall.checks.history import OpType
from squall.checks.locks import check_locks
from squall.scenarios.redis_locks import run_redis_locks
from squall.store.history_log import HistoryLog, read_history

pytestmark = pytest.mark.integration


def prefix() -> str:
    return f"squall-test:locks:{secrets.token_hex(6)}"


async def test_without_fencing_each_stale_holder_overlap_is_named(redis_url: str) -> None:
    report = await run_redis_locks(
        redis_url, contenders=4, ttl_ms=1000, fencing=False, prefix=prefix(), stale=(0, 2)
    )
    verdict = report.verdict
    assert verdict.valid is False
    assert verdict.counts["overlaps"] == 2
    pairs = [
        (e.details["earlier"], e.details["later"]) for e in verdict.evidence if e.kind == "overlap"
    ]
    named = [
        (json.loads(json.dumps(a))["process"], json.loads(json.dumps(b))["process"])
        for a, b in pairs
    ]
    assert named == [("c0", "c1"), ("c2", "c3")]
    assert all(e.details["stale_writes_accepted"] == 1 for e in verdict.evidence)
    # The stale holders' late writes landed after their successors' first writes.
    assert report.stored.index("c0:2:token=None") > report.stored.index("c1:1:token=None")
    assert report.writes_rejected == 0
    assert report.releases_lost == 2  # the expired holders could not delete a lock not theirs
    assert report.tally.violations == 2
    assert not report.tally.passes(max_race_conditions_tolerated=100)


async def test_with_fencing_stale_writes_are_rejected_and_the_checker_passes(
    redis_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "history.jsonl"
    key_prefix = prefix()
    with HistoryLog(path) as log:
        report = await run_redis_locks(
            redis_url, contenders=4, ttl_ms=1000, fencing=True, prefix=key_prefix, history=log
        )
    assert report.verdict.valid is True, report.verdict.summary
    assert report.verdict.counts["overlaps"] == 1
    assert report.verdict.counts["fenced_overlaps"] == 1
    assert report.writes_rejected == 1
    assert "c0:2:token=1" not in report.stored
    assert "c1:1:token=2" in report.stored
    assert report.tally.passes(max_race_conditions_tolerated=0)
    # The history on disk tells the same story to the checker.
    ops = read_history(path)
    rejected = [op for op in ops if op.f == "write" and op.type is OpType.FAIL]
    assert [(op.process, op.get("token"), op.get("highest")) for op in rejected] == [("c0", 1, 2)]
    assert check_locks(ops, key=f"{key_prefix}:lock").valid is True


async def test_without_stale_holders_there_is_no_overlap(redis_url: str) -> None:
    report = await run_redis_locks(
        redis_url, contenders=3, ttl_ms=1000, fencing=False, prefix=prefix(), stale=()
    )
    assert report.verdict.valid is True
    assert report.acquired == 3
    assert report.releases_lost == 0
    assert report.verdict.counts["overlaps"] == 0


async def test_keys_are_cleaned_and_arguments_checked(redis_url: str) -> None:
    key_prefix = prefix()
    await run_redis_locks(redis_url, contenders=2, ttl_ms=30, fencing=True, prefix=key_prefix)
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert await client.keys(f"{key_prefix}:*") == []
    finally:
        await client.aclose()
    with pytest.raises(ValueError, match="needs a successor"):
        await run_redis_locks(redis_url, contenders=2, fencing=True, prefix=key_prefix, stale=(1,))
