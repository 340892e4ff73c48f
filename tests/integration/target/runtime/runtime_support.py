"""Helpers of the runtime's integration tests (a module name no other test directory uses)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any

from squall.target.ids import UserID
from squall.target.runtime import Runtime

#: Upper bound on any wait for the runtime to get somewhere (scaled on slow machines).
WAIT_S = 20.0 * float(os.environ.get("SQUALL_TEST_TIME_SCALE", "1"))

StartRuntime = Callable[..., Awaitable[Runtime]]


class Recorder:
    """The edge's side of ``publish``: every event, in the order the runtime delivered it."""

    def __init__(self) -> None:
        self.events: list[tuple[UserID, dict[str, Any]]] = []
        self._changed = asyncio.Condition()

    async def publish(self, user: UserID, event: dict[str, Any]) -> None:
        async with self._changed:
            self.events.append((user, event))
            self._changed.notify_all()

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [e for _, e in self.events if e["type"] == type_]

    def thread(self, thread: str) -> list[dict[str, Any]]:
        return [e for _, e in self.events if e["thread_id"] == thread]

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT_S), self._changed:
            await self._changed.wait_for(predicate)

    async def wait_completed(self, n: int) -> None:
        await self.wait_for(lambda: len(self.of_type("agent_completed")) >= n)
