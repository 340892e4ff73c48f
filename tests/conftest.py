"""Shared fixtures: real PostgreSQL and Redis for integration tests, and RSA key files.

``DATABASE_URL`` / ``REDIS_URL`` select running servers; otherwise embedded ones
are started once per test session. Each session gets its own fresh database,
dropped at the end, so parallel runs against a shared server never collide.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from squall.services import Endpoints, create_database, drop_database, services


@pytest.fixture(scope="session")
def endpoints() -> Iterator[Endpoints]:
    with services() as found:
        yield found


@pytest.fixture(scope="session")
def pg_url(endpoints: Endpoints) -> Iterator[str]:
    """URL of a fresh database on the session's PostgreSQL server."""
    url = create_database(endpoints.database_url, prefix="squall_test")
    yield url
    drop_database(endpoints.database_url, url)


@pytest.fixture(scope="session")
def redis_url(endpoints: Endpoints) -> str:
    return endpoints.redis_url


def time_scale() -> float:
    """Multiply test timeouts by ``SQUALL_TEST_TIME_SCALE`` on slow machines."""
    return float(os.environ.get("SQUALL_TEST_TIME_SCALE", "1"))


@pytest.fixture
def rsa_key_files(tmp_path: Path) -> tuple[Path, Path]:
    """A fresh RSA key pair as PEM files: ``(private.pem, public.pem)`` in ``tmp_path``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private, public = tmp_path / "private.pem", tmp_path / "public.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public
