"""A real platform for the edge tests: ``squall target serve`` as a child process per module."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from edge_client import Platform, start_platform

from squall.services import Endpoints, drop_database
from squall.services.embedded import EmbeddedPostgres


@pytest.fixture(scope="module")
def platform_factory(
    endpoints: Endpoints, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Platform]]:
    started: list[tuple[Platform, str]] = []

    def make(workers: int = 2, **env: str) -> Platform:
        platform, database = start_platform(
            endpoints, tmp_path_factory.mktemp("target"), workers, **env
        )
        started.append((platform, database))
        return platform

    yield make
    for platform, database in started:
        platform.process.stop(timeout=20)
        drop_database(endpoints.database_url, database)


@pytest.fixture
def postgres() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of the test's own (it is stopped and started again)."""
    server = EmbeddedPostgres.start()
    yield server
    server.stop()
