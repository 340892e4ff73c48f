"""Real PostgreSQL and Redis for squall: given by URL, or embedded from wheels."""

from squall.services.process import ManagedProcess, ProcessStartError, spawn
from squall.services.stack import (
    Endpoints,
    Restart,
    ServiceUnavailable,
    ServiceUrlError,
    create_database,
    drop_database,
    services,
)
from squall.urls import redact, with_database

__all__ = [
    "Endpoints",
    "ManagedProcess",
    "ProcessStartError",
    "Restart",
    "ServiceUnavailable",
    "ServiceUrlError",
    "create_database",
    "drop_database",
    "redact",
    "services",
    "spawn",
    "with_database",
]
