"""PostgreSQL, Redis and the reference platform for one benchmark, then gone.

The one way the benchmarks get a platform: ``squall.services.services()``
(embedded servers, or ``DATABASE_URL`` / ``REDIS_URL``), a fresh database, and
``start_platform`` — the same path ``squall run`` takes. The benchmark talks to
the platform only over the wire and through its databases.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from squall.scenarios.target import TargetInfo
from squall.services import Endpoints, create_database, drop_database, services
from squall.services.platform import RunningPlatform, start_platform

#: Settings that keep billing and the rate limit out of the way of throughput figures.
UNTHROTTLED = {
    "SQUALL_INITIAL_CREDITS": str(10**12),
    "SQUALL_MESSAGES_PER_SECOND": "1000000",
    "SQUALL_MESSAGE_BURST": "1000000",
}


@dataclass(frozen=True)
class Stack:
    endpoints: Endpoints
    database_url: str
    platform: RunningPlatform

    @property
    def target(self) -> TargetInfo:
        return TargetInfo(
            ws_url=self.platform.ws_url,
            http_url=self.platform.http_url,
            jwt_secret=self.platform.jwt_secret,
            pids=(self.platform.pid,),
        )


@contextmanager
def platform_stack(
    *, workers: int = 2, settings: Mapping[str, str] | None = None
) -> Iterator[Stack]:
    """Services, a fresh database and a running platform with ``settings``; all stopped after."""
    with services() as endpoints:
        database_url = create_database(endpoints.database_url, "squall_bench")
        try:
            platform = start_platform(
                database_url,
                endpoints.redis_url,
                workers=workers,
                settings={**UNTHROTTLED, **(settings or {})},
            )
            try:
                yield Stack(endpoints, database_url, platform)
            finally:
                platform.stop()
        finally:
            drop_database(endpoints.database_url, database_url)
