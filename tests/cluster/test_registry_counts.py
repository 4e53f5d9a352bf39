"""Cluster-wide counts from the Redis registry: other live instances' entries only."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest
import redis.asyncio as aioredis

from roomcast.broker.base import ToRoom, ToUser
from roomcast.hub import Hub
from roomcast.registry.redis import RedisRegistry
from roomcast.types import ConnId, RoomId, UserId
from tests.helpers.redis_server import RedisServer

ROOM = RoomId("group:counted")
USER = UserId("u-counted")


def _entry(conn: str, server: str) -> bytes:
    return orjson.dumps({"id": conn, "user_id": USER, "server_id": server, "rooms": [ROOM]})


async def test_counts_skip_dead_instances_gone_entries_and_our_own_stale_ones(
        redis_server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    registry = RedisRegistry(redis_server.url, Hub(), "me")
    keys = registry._k
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        await client.set(keys.server + "live", 1)  # "dead" has no instance key
        entries = {"c-live1": "live", "c-live2": "live", "c-dead": "dead", "c-mine": "me"}
        for conn, server in entries.items():
            await client.set(keys.conn + conn, _entry(conn, server))
        await client.set(keys.conn + "c-bad", b"{not json")
        await client.set(keys.conn.encode() + b"\xff\xfe", _entry("?", "live"))  # not UTF-8
        await client.set(keys.conn + "c-list", b"[1, 2]")
        # c-gone has no entry; c-bad, the non-UTF-8 member and c-list are not entries.
        members: list[str | bytes] = [*entries, "c-gone", "c-bad", b"\xff\xfe", "c-list"]
        await client.sadd(keys.room + ROOM, *members)
        await client.sadd(keys.user + USER, *members)
        # Our own entries count from the hub (empty here), never from Redis.
        counts = await asyncio.gather(*(registry.count(ToRoom(ROOM)) for _ in range(10)))
        assert counts == [2] * 10  # one shared read for the ten
        assert await registry.count(ToRoom(ROOM, exclude=ConnId("c-live1"))) == 1
        assert await registry.count(ToUser(USER)) == 2
        assert await registry.count(ToRoom(RoomId("group:empty"))) == 0
        await client.delete(keys.server + "live")
        registry._alive_until.clear()  # past the one-second trust in a yes
        assert await registry.count(ToRoom(ROOM)) == 0
        await client.set(keys.room + "group:foreign", "a string where a set is expected")
        with caplog.at_level(logging.WARNING, logger="roomcast.registry"):
            assert await registry.count(ToRoom(RoomId("group:foreign"))) == 0
        assert "registry_key_wrong_type" in caplog.text
    finally:
        await client.aclose()
        await registry._redis.aclose()
