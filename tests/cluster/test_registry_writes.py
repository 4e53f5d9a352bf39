"""The registry's writes: one script call per flush, a connection written once opened,
and a wait until a change is written that other instances can rely on."""

from __future__ import annotations

import orjson
import redis.asyncio as aioredis

from roomcast.broker.base import ToRoom
from roomcast.hub import Hub
from roomcast.registry.redis import RedisRegistry
from roomcast.registry.redis_writes import FLUSH, Writes
from roomcast.types import RoomId
from tests.helpers.redis_server import RedisServer
from tests.unit.fakes import make_conn


async def test_one_call_writes_sets_members_ttls_and_skips_a_foreign_key(
        redis_server: RedisServer) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        await client.set("t:gone", "x")
        await client.sadd("t:room", *[f"old{i}" for i in range(3)])
        await client.set("t:foreign", "a string where a set is expected")
        writes = Writes()
        writes.set("t:conn", b'{"id":"c1"}', 60)
        writes.delete("t:gone")
        writes.add_all("t:room", [f"m{i}" for i in range(2500)], 120)  # chunked SADD
        writes.remove_all("t:room", ["old0", "old1"])
        writes.add("t:foreign", "c1", 60)
        writes.add("t:user", "c1", 60)
        keys, argv = writes.script_args()
        wrong = await client.register_script(FLUSH)(keys=keys, args=argv)
        assert wrong == [b"t:foreign"]
        assert await client.get("t:conn") == b'{"id":"c1"}'
        assert 0 < await client.ttl("t:conn") <= 60
        assert await client.exists("t:gone") == 0
        assert await client.scard("t:room") == 2501  # 2,500 added, old2 kept
        assert await client.sismember("t:room", "old2")
        assert 60 < await client.ttl("t:room") <= 120
        assert await client.smembers("t:user") == {b"c1"}  # written after the foreign key
        assert await client.get("t:foreign") == b"a string where a set is expected"
    finally:
        await client.aclose()


async def test_a_connection_is_written_once_in_the_rooms_it_opened_with(
        redis_server: RedisServer) -> None:
    hub = Hub()
    registry = RedisRegistry(redis_server.url, hub, "me")
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        conn, _ = make_conn("c1", "u1")
        hub.add(conn)
        for room in ("user:u1", "group:g1"):
            assert hub.join(conn, RoomId(room), room)
            registry.rooms_changed(conn)  # joining its first rooms: nothing written yet
        assert not registry._dirty
        registry.connection_opened(conn)
        await registry._flush()
        entry = orjson.loads(await client.get("websocket:connection:c1") or b"{}")
        assert entry["rooms"] == ["group:g1", "user:u1"] and entry["server_id"] == "me"
        assert await client.smembers("websocket:room:group:g1") == {b"c1"}
        # Once registered, a room change is written.
        assert hub.leave(conn, RoomId("group:g1"))
        registry.rooms_changed(conn)
        await registry._flush()
        assert await client.smembers("websocket:room:group:g1") == set()
    finally:
        await client.aclose()
        await registry._redis.aclose()


async def test_written_returns_once_other_instances_count_the_change(
        redis_server: RedisServer) -> None:
    hub = Hub()
    ours = RedisRegistry(redis_server.url, hub, "me")
    theirs = RedisRegistry(redis_server.url, Hub(), "other")
    room = RoomId("group:g1")
    await ours.start()
    try:
        conns = [make_conn(f"c{i}", f"u{i}")[0] for i in range(3)]
        for conn in conns:
            hub.add(conn)
            assert hub.join(conn, room, room)
            ours.connection_opened(conn)
        # Each waits for the write that takes its own change (one flush for all three).
        await ours.written(conns[0])
        assert await theirs.count(ToRoom(room)) == 3
        await ours.written(conns[1])  # written already: nothing to wait for

        assert hub.leave(conns[1], room)
        ours.rooms_changed(conns[1])
        await ours.written(conns[1])
        assert await theirs.count(ToRoom(room)) == 2

        hub.remove(conns[2])
        ours.connection_closed(conns[2])
        await ours.written(conns[2])
        assert await theirs.count(ToRoom(room)) == 1
    finally:
        await ours.close()
        await theirs._redis.aclose()
