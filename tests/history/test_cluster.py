"""History on Redis, through two real gateway processes: recovery across instances, and a
pub/sub loss between instances repaired from the stream without disconnecting anyone."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import redis.asyncio as aioredis

from roomcast.client import Client, ConnectionState
from tests.client.support import FAST, until_state
from tests.cluster.support import API_KEY, Cluster
from tests.helpers.cutter import CuttableProxy
from tests.helpers.received import Received
from tests.helpers.redis_server import RedisServer
from tests.helpers.tokens import make_token

ROOM = "group:hist"
WAIT = 30.0


@pytest.fixture
def pair(redis_server: RedisServer) -> Iterator[Cluster]:
    cluster = Cluster(redis_server, 2).start()
    yield cluster
    cluster.close()


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


def api(gw_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=gw_url, timeout=WAIT, headers={"X-API-Key": API_KEY})


async def publish(http: httpx.AsyncClient, n: int) -> None:
    r = await http.post(f"/websocket/rooms/{ROOM}/message",
                        json={"type": "message", "data": {"n": n}})
    assert r.status_code in (200, 202), r.text


async def metric(http: httpx.AsyncClient, name: str) -> float:
    text = (await http.get("/metrics")).text
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(found[1]) if found else 0.0


async def test_recovers_on_another_instance_what_was_published_through_both(
    pair: Cluster,
) -> None:
    a, b = pair.gateways
    proxy = await CuttableProxy(a.port).start()
    token = make_token(pair.secret, "hana", groups=["hist"])
    try:
        async with api(a.base_url) as via_a, api(b.base_url) as via_b, \
                Client(proxy.url(), token=token, backoff=FAST) as client:
            seen = Received(client, ROOM, wait=WAIT)
            await client.room(ROOM).wait_joined()
            await publish(via_a, 1)
            await publish(via_b, 2)
            await seen.until(2)
            states = client.states()
            proxy.cut()
            await asyncio.wait_for(until_state(states, ConnectionState.RECONNECTING), WAIT)
            for n in range(3, 9):
                await publish(via_a if n % 2 else via_b, n)
            # The client comes back on the other instance.
            proxy.target_port = b.port
            proxy.restore()
            await seen.until(8, 1)
            await publish(via_a, 9)
            await seen.until(9)
            assert seen.numbers == list(range(1, 10))
            [outcome] = seen.outcomes
            assert outcome.recovered and outcome.replayed == 6
    finally:
        await proxy.close()


async def test_pubsub_loss_is_repaired_from_the_stream_and_counted(
    pair: Cluster, raw: aioredis.Redis,
) -> None:
    """The receiving instance's subscriber is killed mid-burst (its listener reconnects
    and what was published meanwhile never reaches it over pub/sub)."""
    a, b = pair.gateways
    token = make_token(pair.secret, "ivan", groups=["hist"])
    async with api(a.base_url) as via_a, api(b.base_url) as via_b, \
            Client(b.ws_url, token=token, backoff=FAST) as client:
        seen = Received(client, ROOM, wait=WAIT)
        await client.room(ROOM).wait_joined()
        connection = client.connection_id
        before = await metric(via_b, "roomcast_history_gaps_repaired_total")
        n = 0
        # Each round kills the subscribers, then publishes at once: the listener's
        # reconnect takes at least its backoff, so some of the burst misses it. Rounds
        # repeat (a few at most) until the receiving instance counted a repair.
        for _ in range(10):
            killed = await raw.client_kill_filter(_type="pubsub")
            assert killed >= 1
            for _ in range(20):
                n += 1
                await publish(via_a, n)
            await seen.until(n)
            if await metric(via_b, "roomcast_history_gaps_repaired_total") > before:
                break
        assert seen.numbers == list(range(1, n + 1))
        assert seen.outcomes == [] and client.connection_id == connection
        assert client.duplicates_dropped == 0
        assert await metric(via_b, "roomcast_history_gaps_repaired_total") > before


async def test_an_outage_longer_than_retention_is_told_not_recovered(
    redis_server: RedisServer, raw: aioredis.Redis,
) -> None:
    """The stream expired while the client was away: recovered false, nothing replayed,
    and the application is told (never a silent gap)."""
    from roomcast.client import Reason
    from roomcast.history.redis import keys
    from tests.history.engines import RedisHarness

    cluster = Cluster(redis_server, 1, ROOMCAST_HISTORY_GROUP_TTL="1").start()
    gw = cluster.gateways[0]
    proxy = await CuttableProxy(gw.port).start()
    token = make_token(cluster.secret, "kim", groups=["hist"])
    watcher = RedisHarness(redis_server)
    try:
        async with api(gw.base_url) as http, \
                Client(proxy.url(), token=token, backoff=FAST) as client:
            seen = Received(client, ROOM, wait=WAIT)
            await client.room(ROOM).wait_joined()
            await publish(http, 1)
            await seen.until(1)
            states = client.states()
            proxy.cut()
            await asyncio.wait_for(until_state(states, ConnectionState.RECONNECTING), WAIT)
            await publish(http, 2)
            await watcher.expire_data(ROOM)  # the stream's TTL passed
            assert await raw.exists(keys(ROOM)[0])  # its epoch and top offset did not
            proxy.restore()
            await seen.until(1, 1)
            await publish(http, 3)
            await seen.until(2)
            assert seen.numbers == [1, 3]
            [outcome] = seen.outcomes
            assert (outcome.recovered, outcome.reason, outcome.replayed) == (
                False, Reason.NOT_RECOVERED, 0)
    finally:
        await watcher.close()
        await proxy.close()
        cluster.close()
