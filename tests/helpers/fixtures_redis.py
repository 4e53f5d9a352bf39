"""pytest fixtures giving a test its own ``redis-server`` (see :mod:`.redis_server`).

Load with ``pytest_plugins = ["tests.helpers.fixtures_redis"]``. Tests using them
are skipped, with the reason shown, only when no ``redis-server`` binary exists, and
fail instead under CI (``CI`` set).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.redis_server import RedisServer, redis_server_binary

_NO_BINARY = "no redis-server binary on PATH (install the redis-server package)"


def _server(directory: Path) -> Iterator[RedisServer]:
    if redis_server_binary() is None:
        if os.environ.get("CI"):  # CI must run everything: scripts/test.sh installs it
            pytest.fail(_NO_BINARY)
        pytest.skip(_NO_BINARY)
    server = RedisServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A server for this test alone; the test may stop and start it."""
    yield from _server(tmp_path / "redis")


@pytest.fixture(scope="module")
def redis_server_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A server shared by the module's tests; they must not stop it, and should use
    distinct keys (e.g. a per-test prefix)."""
    yield from _server(tmp_path_factory.mktemp("redis"))
