"""A real platform for the edge tests: ``squall target serve`` as a child process per module."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest
from edge_client import Platform, running_platform

from squall.services import Endpoints
from squall.services.embedded import EmbeddedPostgres, EmbeddedValkey


@pytest.fixture(scope="module")
def platform_factory(
    endpoints: Endpoints, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Platform]]:
    with contextlib.ExitStack() as started:

        def make(workers: int = 2, **env: str) -> Platform:
            return started.enter_context(
                running_platform(endpoints, tmp_path_factory.mktemp("target"), workers, **env)
            )

        yield make


@pytest.fixture
def postgres() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of the test's own (it is stopped and started again)."""
    server = EmbeddedPostgres.start()
    yield server
    server.stop()


@pytest.fixture
def redis_server() -> Iterator[EmbeddedValkey]:
    """A Redis server of the test's own (it is stopped and started again)."""
    server = EmbeddedValkey.start()
    yield server
    server.stop()
