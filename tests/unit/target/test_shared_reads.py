"""Reads asked for in one loop turn share one call; a read asked for once it started does not.

The reads are stand-ins that record their calls and answer when the test releases them,
so which asks land in which call is decided here, not by timing.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping

import pytest

from squall.target.shared_reads import BatchedRead, SharedRead


class Reads:
    """A read that records every call and answers once ``release`` is set."""

    def __init__(self) -> None:
        self.calls: list[object] = []
        self.release = asyncio.Event()
        self.fail: Exception | None = None

    async def one(self, key: str) -> str:
        self.calls.append(key)
        call = len(self.calls)
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return f"value of {key} #{call}"

    async def many(self, group: str, keys: list[str]) -> Mapping[str, str]:
        self.calls.append((group, keys))
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return {key: f"{group}/{key}" for key in keys if key != "left-out"}


async def turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_identical_reads_asked_in_one_turn_share_one_call() -> None:
    reads = Reads()
    shared = SharedRead(reads.one)
    first, second, other = shared("a"), shared("a"), shared("b")
    reads.release.set()
    assert await asyncio.gather(first, second, other) == [
        "value of a #1",
        "value of a #1",
        "value of b #2",
    ]
    assert reads.calls == ["a", "b"]
    assert repr(shared) == "<SharedRead pending=0 running=0>"


async def test_a_read_asked_for_once_the_shared_one_started_is_a_read_of_its_own() -> None:
    # The started read may have been answered from a snapshot older than the ask.
    reads = Reads()
    shared = SharedRead(reads.one)
    first = shared("a")
    await turns()
    assert reads.calls == ["a"]  # started, waiting for its answer
    second = shared("a")
    reads.release.set()
    assert await asyncio.gather(first, second) == ["value of a #1", "value of a #2"]
    assert reads.calls == ["a", "a"]


async def test_an_asker_that_is_cancelled_does_not_cancel_the_others_read() -> None:
    reads = Reads()
    shared = SharedRead(reads.one)
    gone, staying = shared("a"), shared("a")
    await turns()
    gone.cancel()
    await turns()
    reads.release.set()
    assert await staying == "value of a #1"
    assert gone.cancelled()


async def test_a_failed_read_fails_every_asker() -> None:
    reads = Reads()
    reads.fail = ConnectionResetError("lost")
    shared = SharedRead(reads.one)
    outcomes = [shared("a"), shared("a")]
    reads.release.set()
    for outcome in await asyncio.gather(*outcomes, return_exceptions=True):
        assert outcome is reads.fail
    assert reads.calls == ["a"]


async def test_the_keys_of_a_group_asked_in_one_turn_go_in_one_call() -> None:
    reads = Reads()
    batched = BatchedRead(reads.many)
    asks = [batched(1.0, "ann"), batched(1.0, "bob"), batched(1.0, "ann"), batched(2.0, "ann")]
    reads.release.set()
    assert await asyncio.gather(*asks) == ["1.0/ann", "1.0/bob", "1.0/ann", "2.0/ann"]
    assert reads.calls == [(1.0, ["ann", "bob"]), (2.0, ["ann"])]
    assert repr(batched) == "<BatchedRead pending=0 running=0>"


async def test_a_key_asked_for_once_its_batch_started_goes_in_the_next_batch() -> None:
    reads = Reads()
    batched = BatchedRead(reads.many)
    first = batched(1.0, "ann")
    await turns()
    late = [batched(1.0, "ann"), batched(1.0, "bob")]
    reads.release.set()
    assert await asyncio.gather(first, *late) == ["1.0/ann", "1.0/ann", "1.0/bob"]
    assert reads.calls == [(1.0, ["ann"]), (1.0, ["ann", "bob"])]


async def test_a_failed_batch_fails_each_asker_and_a_key_left_out_is_named() -> None:
    reads = Reads()
    batched = BatchedRead(reads.many)
    left_out, kept = batched(1.0, "left-out"), batched(1.0, "kept")
    reads.release.set()
    assert await kept == "1.0/kept"
    with pytest.raises(LookupError, match=re.escape("the read of 1.0 left out 'left-out'")):
        await left_out
    reads.fail = ConnectionResetError("lost")
    outcomes = await asyncio.gather(batched(1.0, "a"), batched(1.0, "b"), return_exceptions=True)
    assert outcomes == [reads.fail, reads.fail]


async def test_an_asker_of_a_batch_that_is_cancelled_leaves_the_others_answered() -> None:
    reads = Reads()
    batched = BatchedRead(reads.many)
    gone, staying = batched(1.0, "ann"), batched(1.0, "ann")
    await turns()
    gone.cancel()
    await turns()
    reads.release.set()
    assert await staying == "1.0/ann"
    assert reads.calls == [(1.0, ["ann"])]
