"""A fresh PostgreSQL database for a test, dropped when it is done with it.

Importable from every test module (``tests/`` is on ``sys.path``: it holds the root
``conftest.py``); the ``fresh_db`` fixture of ``tests/conftest.py`` is built on it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from squall.services import Endpoints, create_database, drop_database


@contextlib.contextmanager
def fresh_database(endpoints: Endpoints, prefix: str) -> Iterator[str]:
    """Create a database of its own, ``prefix_…``, on ``endpoints``' PostgreSQL server and
    yield its URL; it is dropped on exit."""
    url = create_database(endpoints.database_url, prefix=prefix)
    try:
        yield url
    finally:
        drop_database(endpoints.database_url, url)
