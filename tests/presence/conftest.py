"""Two gateways on one real redis-server, with a short TTL and grace period."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from tests.cluster.support import Cluster
from tests.helpers.redis_server import RedisServer, redis_server_binary

#: Seconds a crashed instance's users stay online / a closed connection's user stays online.
TTL = "3"
GRACE = "3"


@pytest.fixture(scope="module")
def presence_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if redis_server_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("no redis-server binary on PATH: CI must install redis-server")
        pytest.skip("no redis-server binary on PATH (install the redis-server package)")
    with RedisServer(tmp_path_factory.mktemp("presence-redis")) as server:
        yield server


@pytest.fixture(scope="module")
def presence_cluster(presence_redis: RedisServer) -> Iterator[Cluster]:
    """Two gateways shared by the module's tests (each test uses users of its own)."""
    c = Cluster(presence_redis, 2, ROOMCAST_INSTANCE_TTL=TTL, ROOMCAST_PRESENCE_GRACE=GRACE)
    c.start()
    yield c
    c.close()


@pytest.fixture
async def raw_redis(presence_redis: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(presence_redis.url)
    yield client
    await client.aclose()
