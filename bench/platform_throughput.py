"""Benchmark 2: messages per second and p99 through the platform's ping and agent paths.

The platform runs with 2 workers on embedded PostgreSQL and Redis (billing and
the rate limit set out of the way); the squall engine (one process) drives a
closed workload against it:

- ping path: each user keeps one socket and one ``ping`` in flight (reply ``pong``);
- agent path: each user keeps one socket and one ``user_message`` in flight,
  waiting for its run to complete (ack, 5+ events; the simulated model's
  default 20 ms to first token and 400 tokens/s are part of every run);
- ceiling: the same client and ping loop against the bare picows echo server.

On a 2-core machine client, platform and databases share the cores: nothing
is pinned here, and the figures are what this machine does with all of them.
"""

from __future__ import annotations

from typing import Any

from bench.echo import start_echo
from bench.record import Result, command_line, log, measured, stop_if_signalled
from bench.stack import platform_stack
from bench.table import (
    WindowError,
    cumulative,
    fmt_count,
    fmt_ms,
    fmt_percent,
    median,
    ratio,
    round_ratios,
    window,
)
from squall.adapters.reference import ReferenceChat
from squall.engine import Scenario, Session, closed
from squall.engine import run as run_engine
from squall.metrics.result import RunResult
from squall.scenarios.target import TargetInfo

NAME = "platform"
TITLE = "2. Platform throughput: ping and agent paths at 2 workers, vs a bare echo server"


def _is_pong(message: dict[str, Any]) -> bool:
    return message.get("type") == "pong"


async def ping_behaviour(session: Session) -> None:
    """One ping round trip on the user's kept socket (the echo server echoes it back)."""
    ws = await session.connection(session.params["url"], auth=session.params["auth"])
    until = _is_pong if session.params["auth"] else None
    await ws.request({"type": "ping", "id": session.iteration}, until=until, metric="round_trip")


async def agent_behaviour(session: Session) -> None:
    """One chat message on the user's kept socket, followed to ``agent_completed``."""
    ws = await session.connection(session.params["url"])
    chat = session.state.get("chat")
    if chat is None or chat.ws is not ws:
        chat = session.state["chat"] = ReferenceChat(ws, session)
    await chat.chat(f"{session.identity.user_id}-bench", "How is my order doing?", timeout=30.0)


def _steady(result: RunResult, warmup: float) -> float | None:
    """Messages received per second after the warm-up (last, partial second left out)."""
    points = result.series[:-1]
    try:
        return window(cumulative([(p.t + 1.0, p.received_per_s, 0.0) for p in points]), warmup).rate
    except WindowError:
        return None


def _measure(
    label: str, scenario: Scenario, duration: float, warmup: float, trend: str
) -> dict[str, Any]:
    log(f"platform: {label}, {scenario.workload.max_users} users, {duration:g} s")
    entry: dict[str, Any] = {"path": label, "users": scenario.workload.max_users}
    with measured(entry):
        result = run_engine(scenario, processes=1, progress=False, deadline_s=duration + 60.0)
    stop_if_signalled(f"platform: {label}", result.interrupted_reason)
    frames = _steady(result, warmup)
    timed = result.trend(trend)
    received = result.count("messages_received")
    # Runs per second = frames per second × runs per frame (each run is several frames).
    per_message = ratio(float(timed.count), float(received)) if received else None
    entry.update(
        {
            "duration_s": result.duration_s,
            "warmup_s": warmup,
            "frames_per_s": frames,
            "messages_per_s": frames * per_message if frames and per_message else None,
            "count": timed.count,
            "p50_s": timed.p50,
            "p99_s": timed.p99,
            "errors": result.count("errors"),
            "error_samples": [e.to_dict() for e in result.errors],
            "success": result.rate("success").rate if "success" in result.metrics else None,
            "generator": result.generator.to_dict(),
        }
    )
    log(
        f"  {entry['messages_per_s'] or 0:,.0f} msg/s, p99 {fmt_ms(entry['p99_s'])}, "
        f"errors {entry['errors']}"
    )
    return entry


#: Rounds in a full run; each round measures every path once, in turn.
ROUNDS = 3
PATHS = ("ceiling", "ping", "agent")
LABELS = {
    "ceiling": "bare echo server (ceiling)",
    "ping": "platform ping path",
    "agent": "platform agent path",
}


def _scenario(
    key: str, round_no: int, users: int, duration: float, url: str, target: TargetInfo
) -> Scenario:
    """Round ``round_no``'s scenario for path ``key`` (fresh users each round)."""
    if key == "ceiling":
        return Scenario(
            f"bench-echo-ceiling-{round_no}",
            "bench.platform_throughput:ping_behaviour",
            closed(users, duration=duration),
            params={"url": url, "auth": False},
            graceful_stop_s=2.0,
        )
    return Scenario(
        f"bench-{key}-{round_no}",
        f"bench.platform_throughput:{key}_behaviour",
        closed(users, duration=duration),
        identities=target.identities(f"bench-{key}-{round_no}"),
        params={"url": target.ws_url, "auth": True},
        graceful_stop_s=2.0 if key == "ping" else 10.0,
    )


def run(quick: bool) -> Result:
    result = Result(NAME, TITLE, quick, command_line(NAME, quick))
    duration = 5.0 if quick else 12.0
    warmup = 2.0 if quick else 3.0
    rounds = 1 if quick else ROUNDS
    users = {"ceiling": 50, "ping": 50, "agent": 50} if quick else {
        "ceiling": 100, "ping": 100, "agent": 200
    }  # fmt: skip
    by_path: dict[str, list[dict[str, Any]]] = {key: [] for key in PATHS}
    echo, echo_url = start_echo(None)
    try:
        with platform_stack(workers=2) as stack:
            for round_no in range(rounds):
                # The first measurement goes to a different path each round.
                order = PATHS[round_no % len(PATHS) :] + PATHS[: round_no % len(PATHS)]
                for key in order:
                    scenario = _scenario(
                        key, round_no, users[key], duration, echo_url, stack.target
                    )
                    trend = "response_time" if key == "agent" else "round_trip"
                    entry = _measure(
                        f"{LABELS[key]}, round {round_no + 1}", scenario, duration, warmup, trend
                    )
                    entry.update(path=LABELS[key], round=round_no + 1)
                    by_path[key].append(entry)
                    result.measurements.append(entry)
    finally:
        echo.stop()
    result.table = _table(by_path)
    result.notes += [
        "messages / s: round trips (ping) or completed agent runs (agent) per second after "
        f"the first {warmup:g} s; frames / s counts every frame the client received. Each "
        f"figure is the median over {rounds} round(s); each round measures every path once, "
        "in turn (the first one changes from round to round), so a slow spell of the shared "
        "machine lands on every path alike. 'frames / s vs ceiling' is the median of the "
        "per-round ratios of frames / s.",
        "An agent run is one user_message → ack + agent_started, tool_executing, "
        "tool_completed, agent_thinking×N, agent_completed, with the simulated model's "
        "default latency (20 ms to first token, 400 tokens/s, 32 tokens).",
        "Client (squall engine, 1 process), platform (2 workers), PostgreSQL and Redis share "
        "the machine's 2 cores; nothing is pinned. The echo server and the platform both "
        "run for the whole benchmark, each idle while the other is measured.",
    ]
    return result


def _table(by_path: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The medians over the rounds, path by path, and each path's ratio to the ceiling."""
    ceiling_frames = [e.get("frames_per_s") for e in by_path["ceiling"]]
    rows = []
    for key in PATHS:
        entries = by_path[key]
        rows.append(
            [
                LABELS[key],
                str(entries[0]["users"]) if entries else "—",
                fmt_count(median([e.get("messages_per_s") for e in entries])),
                fmt_count(median([e.get("frames_per_s") for e in entries])),
                fmt_ms(median([e.get("p50_s") for e in entries])),
                fmt_ms(median([e.get("p99_s") for e in entries])),
                fmt_percent(
                    median(
                        list(round_ratios([e.get("frames_per_s") for e in entries], ceiling_frames))
                    )
                ),
                str(sum(int(e.get("errors") or 0) for e in entries)),
            ]
        )
    return {
        "columns": [
            "path",
            "users",
            "messages / s",
            "frames / s",
            "p50",
            "p99",
            "frames / s vs ceiling",
            "errors",
        ],
        "rows": rows,
    }
