"""What roomcast leaves in Redis and how it copes with what others left there.

Two gateways on a Redis of this module's own (the shared cluster's keys must not be
disturbed): keys of another type under the compat names, room names that must not
pile up, and a status route that does not scan the keyspace.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import redis
import redis.asyncio as aioredis

from roomcast.server.status import CLUSTER_CACHE
from tests.cluster.support import (
    Cluster,
    api_client,
    close_all,
    eventually,
    join,
    registered,
    uid,
)
from tests.helpers.problems import answer, problem
from tests.helpers.redis_server import RedisServer


@pytest.fixture(scope="module")
def pair(redis_server_module: RedisServer) -> Iterator[Cluster]:
    # An older version's unbounded name hash, left behind: removed at start.
    with redis.Redis.from_url(redis_server_module.url) as client:
        client.hset("roomcast:room_names", "group:ancient", "Group: Ancient")
    cluster = Cluster(redis_server_module, 2).start()
    yield cluster
    cluster.close()


@pytest.fixture
async def raw(pair: Cluster) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(pair.redis.url)
    yield client
    await client.aclose()


async def test_keys_of_another_type_are_skipped_never_a_503(
        pair: Cluster, raw: aioredis.Redis) -> None:
    a, b = pair.gateways
    group, user = uid("gostr"), uid("gouser")
    room = f"group:{group}"
    # What the Go repository would write: strings under the compat names.
    await raw.set(f"websocket:room:{room}", '{"id": "' + room + '", "members": []}')
    await raw.set(f"websocket:user:{user}", "not a set")
    await raw.hset("websocket:connection:go-conn-1", mapping={"id": "go-conn-1"})
    other = uid("g")
    ours = await join(a, uid("u"), [group, other])
    theirs = await join(b, user)
    async with api_client(a) as api_a, api_client(b) as api_b:
        await registered(api_b, ours.conn_id, f"group:{other}")
        for api in (api_a, api_b):
            listing = answer(await api.get("/websocket/rooms"), "RoomList")
            ids = {r["id"] for r in listing["rooms"]}
            assert f"group:{other}" in ids, listing
            connections = answer(await api.get("/websocket/connections"), "ConnectionList")
            assert "go-conn-1" not in {c["id"] for c in connections["connections"]}
            answer(await api.get("/websocket/connections", params={"user_id": user}),
                   "ConnectionList")
        # The room whose key is a string: not listed from elsewhere, and no 503 for it.
        problem(await api_b.get(f"/websocket/rooms/{room}"), 404)
        # Its member here still gets what is sent to it, counted from this instance.
        sent = answer(await api_a.post(f"/websocket/rooms/{room}/message",
                                       json={"type": "notification", "data": {"n": 1}}),
                      "Sent")
        assert sent["recipients_count"] == 1, sent
        got = await ours.expect("notification")
        assert got["room"] == room
        # The writer was not stuck on the failing key: later changes still reach Redis.
        late = await join(a, uid("late"), [uid("g")])
        await registered(api_b, late.conn_id)

    async def logged() -> bool | None:
        return True if '"registry_key_wrong_type"' in a.log() else None

    await eventually(logged, "the wrong-type log line")
    # Once per key, not once per write or read.
    assert a.log().count(f'websocket:room:{room}"') <= 1
    assert await raw.type(f"websocket:room:{room}") == b"string"  # left as it was
    await close_all(ours, theirs, late)


async def test_room_names_live_as_long_as_their_rooms(pair: Cluster,
                                                      raw: aioredis.Redis) -> None:
    a, b = pair.gateways
    group = uid("named")
    peer = await join(a, uid("u"), [group])
    async with api_client(b) as api_b:
        await registered(api_b, peer.conn_id, f"group:{group}")
        body = answer(await api_b.get(f"/websocket/rooms/group:{group}"), "RoomOne")
        assert body["room"]["name"] == f"Group: {group}"  # read from the other instance
    ttl = await raw.ttl(f"roomcast:room_name:group:{group}")
    assert 0 < ttl <= 7200  # expires with the room key unless refreshed
    assert not await raw.exists("roomcast:room_names")  # the legacy hash is gone
    await peer.close()


async def test_status_never_scans_the_keyspace(pair: Cluster, raw: aioredis.Redis) -> None:
    """Public status calls read a few keys; a crowd polling it shares one read a second."""
    a, _ = pair.gateways
    peer = await join(a, uid("u"))
    async with httpx.AsyncClient(base_url=a.base_url, timeout=10) as http:
        await raw.config_resetstat()
        started = time.monotonic()
        for _ in range(5):
            many = await asyncio.gather(*(http.get("/websocket/status") for _ in range(10)))
            body = answer(many[-1], "Status")
            assert body["status"] == "healthy"
        elapsed = time.monotonic() - started
        stats = await raw.info("commandstats")
    assert "cmdstat_scan" not in stats, stats.get("cmdstat_scan")
    # One read of the instance list per CLUSTER_CACHE second, however many callers.
    reads = stats.get("cmdstat_zrange", {}).get("calls", 0)
    assert 1 <= reads <= elapsed / CLUSTER_CACHE + 2, (reads, elapsed)
    counted = body["cluster"]
    assert counted["connections"] >= 1 and counted["rooms"] >= 1
    await peer.close()
