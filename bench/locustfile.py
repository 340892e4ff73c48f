"""The Locust side of the engine benchmark: an idiomatic WebSocket ``User``.

Locust has no WebSocket user of its own; the usual pattern (locust-plugins'
``SocketIOUser`` and most published examples) is a ``User`` holding a
``websocket-client`` connection, which gevent's monkey-patching makes
cooperative, reporting each exchange through ``events.request`` so Locust's
statistics see it. That is what this file does, with no wait between tasks:
one 64-byte message in flight per user, like the other clients.

For the benchmark it also counts completed round trips and, every half second,
records ``[seconds, round trips, CPU seconds, user CPU seconds]`` from the start of the test; at
exit it writes them to the file named by ``BENCH_SAMPLES_PATH``.
"""

from __future__ import annotations

import json
import os
import resource
import time
from typing import Any

import gevent
import websocket
from locust import User, constant, events, task

PAYLOAD = '{"type":"echo","pad":"' + "x" * 40 + '"}'
_done = [0]
_samples: list[list[float]] = []


def _cpu() -> tuple[float, float]:
    """(user + system, user) CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_utime


def _sample_forever(t0: float, cpu0: tuple[float, float]) -> None:
    while True:
        cpu, user = _cpu()
        _samples.append([time.monotonic() - t0, float(_done[0]), cpu - cpu0[0], user - cpu0[1]])
        gevent.sleep(0.5)


def _start_sampling(environment: Any, **kwargs: Any) -> None:
    gevent.spawn(_sample_forever, time.monotonic(), _cpu())


def _write_samples(environment: Any, **kwargs: Any) -> None:
    path = os.environ.get("BENCH_SAMPLES_PATH")
    if path:
        with open(path, "w") as out:
            json.dump({"samples": _samples, "errors": environment.stats.total.num_failures}, out)


events.test_start.add_listener(_start_sampling)  # type: ignore[no-untyped-call]
events.quitting.add_listener(_write_samples)  # type: ignore[no-untyped-call]


class EchoUser(User):
    wait_time = constant(0)

    def on_start(self) -> None:
        if not self.host:
            raise ValueError("EchoUser needs --host ws://127.0.0.1:PORT/ (the echo server)")
        self.ws = websocket.create_connection(self.host, timeout=10)

    def on_stop(self) -> None:
        self.ws.close()

    @task
    def echo(self) -> None:
        started = time.perf_counter()
        error: Exception | None = None
        try:
            self.ws.send(PAYLOAD)
            self.ws.recv()
        except Exception as exc:  # reported to Locust's statistics, like any Locust user
            error = exc
        self.environment.events.request.fire(
            request_type="WS",
            name="echo",
            response_time=(time.perf_counter() - started) * 1000.0,
            response_length=len(PAYLOAD),
            exception=error,
            context={},
        )
        if error is None:
            _done[0] += 1
