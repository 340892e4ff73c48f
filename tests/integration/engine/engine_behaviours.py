"""Behaviours used by the engine's integration tests (imported by worker processes)."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from squall.engine import MessageTimeout, Session


async def echo(session: Session) -> None:
    """One request per iteration on a connection kept across iterations."""
    url = session.params["url"]
    ws = await session.connection(url)
    await asyncio.sleep(float(session.params.get("think_s", 0.0)))
    seq = session.iteration
    stall_every = int(session.params.get("stall_every", 0))
    message: dict[str, object] = {"user": session.identity.user_id, "seq": seq}
    if stall_every and (session.identity.index + seq) % stall_every == 0:
        message["stall"] = float(session.params.get("stall_s", 1.0))
    reply = await ws.request(
        message,
        until=lambda m: m.get("seq") == seq,
        timeout=float(session.params.get("timeout_s", 5.0)),
    )
    if reply.get("user") != session.identity.user_id:
        raise AssertionError(f"reply {reply!r} belongs to another user")


async def connect_once(session: Session) -> None:
    """Connect (with the identity's token), one round trip, close."""
    url = session.params["url"]
    async with session.ws(url, subprotocols=["squall.v1"]) as ws:
        await ws.request({"seq": 0}, metric="round_trip", timeout=5.0)


async def blocks_first_user(session: Session) -> None:
    """User 0 blocks its worker's event loop with a synchronous sleep; the others idle."""
    if session.identity.index == 0:
        time.sleep(float(session.params["block_s"]))  # noqa: ASYNC251 - the mistake under test
    await asyncio.sleep(0.01)


async def kills_its_worker(session: Session) -> None:
    """User 0 kills its own worker process (as the out-of-memory killer would) on its second
    iteration; the others idle."""
    if session.identity.index == 0 and session.iteration == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    await asyncio.sleep(0.01)


async def gives_up(session: Session) -> None:
    """Raises a MessageTimeout of its own, as a behaviour waiting on something else might."""
    raise MessageTimeout(f"user {session.identity.index}: gave up waiting for the job")


async def idles(session: Session) -> None:
    """Leaves a file named after its worker's pid in ``params["folder"]``, then idles."""
    if session.iteration == 0:
        marker = os.path.join(session.params["folder"], str(os.getpid()))
        os.close(os.open(marker, os.O_CREAT | os.O_WRONLY, 0o644))
    await asyncio.sleep(0.05)
