"""The end of a run closes every session at once, and a close that raises what is not an
``Exception`` stops the run, once the other closes are done (no sockets: stand-ins for a
session's close)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from squall.engine import Scenario, closed
from squall.engine.runner import Worker, WorkerPlan, close_all
from squall.engine.session import Session


class Interrupt(BaseException):
    """A ``BaseException`` of a test's own: asyncio hands these to ``gather``'s caller."""


class _Closing:
    """A session stand-in whose close takes ``delay_s``, then raises ``raises`` if set."""

    def __init__(self, closed: list[str], name: str, delay_s: float = 0.0) -> None:
        self._closed = closed
        self._name = name
        self._delay_s = delay_s
        self.raises: BaseException | None = None

    async def aclose(self) -> None:
        await asyncio.sleep(self._delay_s)
        if self.raises is not None:
            raise self.raises
        self._closed.append(self._name)


def _sessions(closed: list[str], failing: BaseException) -> list[_Closing]:
    """A failing close between two slower ones and one raising an ordinary error."""
    sessions = [
        _Closing(closed, "before", delay_s=0.1),
        _Closing(closed, "failing"),
        _Closing(closed, "erring"),
        _Closing(closed, "after", delay_s=0.1),
    ]
    sessions[1].raises = failing
    sessions[2].raises = OSError("connection reset")
    return sessions


@pytest.mark.timeout(30)
@pytest.mark.parametrize("failing", [KeyboardInterrupt(), SystemExit(3), Interrupt()], ids=repr)
def test_a_close_raising_a_base_exception_raises_it_once_the_others_are_closed(
    failing: BaseException,
) -> None:
    closed: list[str] = []
    sessions = _sessions(closed, failing)
    # asyncio.run: a KeyboardInterrupt leaving a loop would take the test's loop along.
    with pytest.raises(type(failing)) as caught:
        asyncio.run(close_all(sessions))
    assert caught.value is failing
    assert sorted(closed) == ["after", "before"]


@pytest.mark.timeout(30)
async def test_ordinary_close_errors_leave_the_other_closes_be_and_are_not_raised() -> None:
    closed: list[str] = []
    sessions = _sessions(closed, ValueError("bad close"))
    started = time.monotonic()
    async with asyncio.timeout(10.0):
        await close_all(sessions)
    # Together: the two slow closes take one delay, not two.
    assert time.monotonic() - started < 0.19
    assert sorted(closed) == ["after", "before"]


class _Transport(httpx.AsyncBaseTransport):
    """An HTTP transport whose close takes ``delay_s``, then raises ``raises`` if set."""

    def __init__(self, done: list[int], index: int, raises: BaseException | None) -> None:
        self._done = done
        self._index = index
        self._raises = raises

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"no request expected, got {request.method} {request.url}")

    async def aclose(self) -> None:
        await asyncio.sleep(0.1)
        if self._raises is not None:
            raise self._raises
        self._done.append(self._index)


@pytest.mark.timeout(30)
def test_a_worker_whose_session_close_is_interrupted_closes_the_others_then_raises() -> None:
    done: list[int] = []

    async def hold_an_http_client(session: Session) -> None:
        index = session.identity.index
        raises = KeyboardInterrupt() if index == 1 else None
        session._http = httpx.AsyncClient(transport=_Transport(done, index, raises))

    async def main() -> None:
        scenario = Scenario("teardown", hold_an_http_client, closed(3, iterations=1))
        plan = WorkerPlan(scenario, 0, 1, range(3), deadline_s=10.0)
        await Worker(plan, hold_an_http_client, lambda snapshot: None).run(time.monotonic())

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(main())
    assert sorted(done) == [0, 2]
