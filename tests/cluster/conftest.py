"""A module-scoped cluster of three gateways on the module's Redis, plus per-test clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import redis.asyncio as aioredis

from tests.cluster.support import Cluster, api_client
from tests.helpers.redis_server import RedisServer


@pytest.fixture(scope="module")
def cluster(redis_server_module: RedisServer) -> Iterator[Cluster]:
    """Three gateways for tests that leave Redis and the gateways running.

    Tests sharing it use ids of their own and close their connections.
    """
    c = Cluster(redis_server_module, 3).start()
    yield c
    c.close()


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
