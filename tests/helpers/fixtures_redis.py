"""pytest fixtures giving a test its own ``redis-server`` (see :mod:`.redis_server`).

Load with ``pytest_plugins = ["tests.helpers.fixtures_redis"]``. Tests using them
are skipped, with the reason shown, only when no ``redis-server`` binary exists, and
fail instead under CI (``CI`` set).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cluster.support import Cluster
from tests.helpers.redis_cluster import RedisCluster, redis_cli_binary
from tests.helpers.redis_server import RedisServer, redis_server_binary

#: ``redis_cluster(n=2, **env)``: started gateways sharing the test's own Redis.
ClusterFactory = Callable[..., Cluster]

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


def _redis_cluster(directory: Path) -> Iterator[RedisCluster]:
    if redis_server_binary() is None or redis_cli_binary() is None:
        why = "no redis-server or redis-cli binary on PATH (install the redis-server package)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    nodes = RedisCluster(directory)
    try:
        yield nodes.start()
    finally:
        nodes.stop()


@pytest.fixture
def redis_cluster_nodes(tmp_path: Path) -> Iterator[RedisCluster]:
    """A Redis Cluster (3 masters, a replica each) for this test alone: it may kill one."""
    yield from _redis_cluster(tmp_path / "redis-cluster")


@pytest.fixture(scope="module")
def redis_cluster_nodes_module(tmp_path_factory: pytest.TempPathFactory
                               ) -> Iterator[RedisCluster]:
    """A Redis Cluster shared by the module's tests; they must not kill its nodes."""
    yield from _redis_cluster(tmp_path_factory.mktemp("redis-cluster"))


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A server for this test alone; the test may stop and start it."""
    yield from _server(tmp_path / "redis")


@pytest.fixture(scope="module")
def redis_server_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A server shared by the module's tests; they must not stop it, and should use
    distinct keys (e.g. a per-test prefix)."""
    yield from _server(tmp_path_factory.mktemp("redis"))


@pytest.fixture
def redis_cluster(redis_server: RedisServer) -> Iterator[ClusterFactory]:
    """Gateways on this test's own Redis (which the test may stall, stop and start);
    their logs are printed at the end, shown by pytest when the test failed."""
    made: list[Cluster] = []

    def make(n: int = 2, **env: str) -> Cluster:
        made.append(Cluster(redis_server, n, **env).start())
        return made[-1]

    yield make
    for cluster in made:
        print(cluster.logs())
        cluster.close()
