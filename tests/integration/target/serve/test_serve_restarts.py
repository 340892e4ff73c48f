"""``serve`` stops, exit 1, once more workers died than its restart budget allows."""

from __future__ import annotations

import os
import signal
import threading
import uuid
from collections.abc import Iterator

import psutil
import pytest

from fresh_databases import fresh_database
from squall.services import Endpoints
from squall.target.server import serve
from squall.target.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(endpoints: Endpoints) -> Iterator[Settings]:
    environ = dict(os.environ)  # serve exports the settings for its workers
    with fresh_database(endpoints, "squall_serve") as database:
        try:
            yield Settings(
                database_url=database,
                redis_url=endpoints.redis_url,
                redis_prefix=f"serve-{uuid.uuid4().hex[:10]}",
                jwt_secret=f"serve-test-secret-{uuid.uuid4().hex}",
            )
        finally:
            os.environ.clear()
            os.environ.update(environ)


def test_a_death_past_the_budget_stops_serve_with_exit_1(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    ready = threading.Event()
    killed: list[int] = []

    def kill_one_worker() -> None:
        if not ready.wait(60):
            return
        (worker, *_) = [
            child
            for child in psutil.Process().children()
            if any("multiprocessing.spawn" in part for part in child.cmdline())
        ]
        killed.append(worker.pid)
        worker.send_signal(signal.SIGKILL)

    killer = threading.Thread(target=kill_one_worker, daemon=True)
    killer.start()
    code = serve(
        settings.replace(worker_restarts=0), port=0, workers=2, on_ready=lambda _: ready.set()
    )
    killer.join(5)
    assert code == 1
    err = " ".join(capsys.readouterr().err.split())
    assert killed, err
    assert (
        f"squall target: worker pid {killed[0]} was killed by SIGKILL; stopping: more than "
        "0 workers died within 60 s (SQUALL_WORKER_RESTARTS, SQUALL_WORKER_RESTART_WINDOW_S), "
        "see the workers' errors above"
    ) in err
