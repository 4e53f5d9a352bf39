"""pytest fixtures giving a test a fresh PostgreSQL database (see :mod:`.postgres`).

Load with ``pytest_plugins = ["tests.helpers.fixtures_postgres"]``. Tests using
them are skipped, with every reason shown, only when no server can be had, and fail
instead under CI (``CI`` set).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.helpers.postgres import PostgresServer, create_scratch, drop_scratch, find_postgres


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A reachable server, found or started once per test session."""
    server, reason = find_postgres()
    if server is None:
        if os.environ.get("CI"):  # CI must run everything: scripts/test.sh installs it
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def postgres_dsn(postgres_server: PostgresServer) -> AsyncIterator[str]:
    """DSN of a database (or schema) created for this test and dropped after it."""
    dsn, drop_sql = await create_scratch(postgres_server.dsn)
    try:
        yield dsn
    finally:
        await drop_scratch(postgres_server.dsn, drop_sql)
