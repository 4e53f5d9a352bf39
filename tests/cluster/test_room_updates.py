"""Coalesced ``room_update``: one per interval per member, whatever instance the joins
came through. Each instance reports the rooms that changed on it and sends its own
members the update; the update itself never crosses Redis (it used to, once per
instance, so every member heard it once per instance with changes)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import redis.asyncio as aioredis

from tests.cluster.support import DEADLINE, Cluster, close_all, join, uid
from tests.helpers.redis_server import RedisServer
from tests.helpers.ws import Message

#: The coalesced update as it would travel in a publication (orjson writes no spaces).
MEMBERS = re.compile(rb'"action":\s*"members"')


def members(count: int) -> Callable[[Message], bool]:
    def match(msg: Message) -> bool:
        return (msg.get("type") == "room_update" and msg["data"].get("action") == "members"
                and msg["data"]["member_count"] == count)
    return match


async def test_other_instances_send_their_members_the_update_a_report_asks_for(
    redis_server: RedisServer,
) -> None:
    # Threshold 1: from a room's second member on an instance, its events are coalesced.
    cluster = Cluster(redis_server, 2, ROOMCAST_ROOM_EVENT_THRESHOLD="1",
                      ROOMCAST_ROOM_EVENT_INTERVAL="0.5").start()
    raw = aioredis.Redis.from_url(redis_server.url)
    spy = raw.pubsub()
    await spy.psubscribe("*")
    async with asyncio.timeout(DEADLINE):
        while (await spy.get_message(timeout=1.0) or {}).get("type") != "psubscribe":
            pass
    a, b = cluster.gateways
    group = uid("g")
    room = f"group:{group}"
    peers = []
    try:
        first = await join(a, uid("first"), [group])
        peers.append(first)
        second = await join(b, uid("second"), [group])
        peers.append(second)
        # One member per instance: announced on its own, with the joiner's id.
        joined = await first.expect("room_update")
        assert joined["data"]["action"] == "member_joined", joined
        peers.append(await join(a, uid("third"), [group]))  # A's second member: coalesced

        for peer in (first, second):  # A's member from A, B's member from B
            update = await peer.expect(members(3))
            assert update["room"] == room
            assert update["data"] == {"action": "members", "room_id": room, "member_count": 3}

        # Everything published to Redis before this marker has reached the spy before it.
        marker = uid("marker")
        await raw.publish("roomcast-test:marker", marker)
        crossed: list[bytes] = []
        async with asyncio.timeout(DEADLINE):
            while True:
                msg = await spy.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if msg is None:
                    continue
                if msg["channel"] == b"roomcast-test:marker":
                    break
                crossed.append(msg["data"])
        assert not [d for d in crossed if MEMBERS.search(d)], crossed
        reports = [d for d in crossed if b'"rooms_changed"' in d]
        assert any(room.encode() in d for d in reports), crossed
    finally:
        await close_all(*peers)
        await spy.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
        await raw.aclose()
        cluster.close()
