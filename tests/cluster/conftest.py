"""One cluster of three gateways on one Redis for the package, plus per-test clients."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import redis.asyncio as aioredis

from tests.cluster.support import Cluster, api_client
from tests.helpers.redis_server import RedisServer, redis_server_binary


@pytest.fixture(scope="package")
def cluster_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The Redis of the shared cluster; never stopped by a test."""
    if redis_server_binary() is None:
        reason = "no redis-server binary on PATH (install the redis-server package)"
        if os.environ.get("CI"):  # CI must run everything: scripts/test.sh installs it
            pytest.fail(reason)
        pytest.skip(reason)
    with RedisServer(tmp_path_factory.mktemp("cluster-redis")) as server:
        yield server


@pytest.fixture(scope="package")
def cluster(cluster_redis: RedisServer) -> Iterator[Cluster]:
    """Three gateways shared by every test that leaves Redis and the gateways running.

    Tests sharing it use ids of their own and close their connections.
    """
    c = Cluster(cluster_redis, 3).start()
    yield c
    c.close()


@pytest.fixture
def own_cluster(redis_server: RedisServer) -> Iterator[Cluster]:
    """Three gateways of this test alone, for cluster-wide counts that must be exact.

    The shared cluster holds whatever earlier tests left (a failed one may leave
    connections open): a count of it would make their failure this test's too.
    """
    c = Cluster(redis_server, 3).start()
    yield c
    c.close()


@pytest.fixture
async def own_apis(own_cluster: Cluster) -> AsyncIterator[list[httpx.AsyncClient]]:
    """One admin API client per gateway of :func:`own_cluster`."""
    clients = [api_client(gw) for gw in own_cluster.gateways]
    yield clients
    for client in clients:
        await client.aclose()


@pytest.fixture
async def apis(cluster: Cluster) -> AsyncIterator[list[httpx.AsyncClient]]:
    """One admin API client (X-API-Key) per gateway of the cluster, in order."""
    clients = [api_client(gw) for gw in cluster.gateways]
    yield clients
    for client in clients:
        await client.aclose()


@pytest.fixture
async def raw(cluster: Cluster) -> AsyncIterator[aioredis.Redis]:
    """A plain Redis client on the cluster's server: the stand-in for a Go instance."""
    client = aioredis.Redis.from_url(cluster.redis.url)
    yield client
    await client.aclose()
