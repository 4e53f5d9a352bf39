"""User presence across two real gateways on one real redis-server.

Subscribers follow users they share a room with; changes made on one instance reach
subscribers on the other; the last connection closing shows ``offline`` only after
the grace period, a reconnect within it shows nothing, and a SIGKILLed instance's
users go offline once their entries expire.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.cluster.support import Cluster, barrier, close_all, eventually, join, uid
from tests.helpers.gateway import GatewayProcess
from tests.helpers.ws import Message, Peer

pytestmark = pytest.mark.redis


async def subscribe(peer: Peer, user: str) -> Message:
    """Subscribe; returns the presence event that follows the ack.

    A user connected on the other instance shares a room with ``peer`` once that
    instance's registry write (a few ms after the connect) is in Redis; until then the
    subscription is rightly refused, and asked again.
    """

    async def answered() -> Message | None:
        reply = await peer.request({"id": uid("sub"), "type": "system",
                                    "data": {"action": "subscribe_presence", "userId": user}})
        refused = reply["type"] == "error" and reply["data"]["code"] == "forbidden"
        return None if refused else reply

    reply = await eventually(answered, f"{user} listed where {peer.conn_id} can follow them")
    assert reply["type"] == "system" and reply["data"]["status"] == "ok", reply
    assert reply["data"]["presence"]["userId"] == user
    event = await peer.expect("presence")
    assert event["data"]["userId"] == user
    return event


async def set_status(peer: Peer, status: str, **metadata: Any) -> Message:
    return await peer.request({"id": uid("p"), "type": "presence",
                               "data": {"status": status, "metadata": metadata}})


async def presence_of(peer: Peer, user: str) -> Message:
    return await peer.expect(lambda m: m["type"] == "presence" and m["data"]["userId"] == user)


async def test_online_and_status_changes_reach_a_subscriber_on_the_other_instance(
    presence_cluster: Cluster,
) -> None:
    a_gw, b_gw = presence_cluster.gateways
    group = uid("g")
    alice, bob = uid("alice"), uid("bob")
    watcher = await join(b_gw, bob, [group])
    try:
        # Alice is offline: Bob shares no live room with her yet, and the store knows
        # no group of hers, so the subscription is refused until she is in one.
        refused = await watcher.request({"id": "s0", "type": "system",
                                         "data": {"action": "subscribe_presence",
                                                  "userId": alice}})
        assert refused["type"] == "error" and refused["data"]["code"] == "forbidden", refused

        on_a = await join(a_gw, alice, [group])
        first = await subscribe(watcher, alice)
        assert first["data"]["status"] == "online" and first["data"]["user_id"] == alice

        reply = await set_status(on_a, "away", note="lunch")
        assert reply["type"] == "presence" and reply["data"]["status"] == "away", reply
        event = await presence_of(watcher, alice)
        assert event["data"]["status"] == "away"
        assert event["data"]["metadata"] == {"note": "lunch"}
        assert isinstance(event["data"]["timestamp"], str)

        await set_status(on_a, "online")
        assert (await presence_of(watcher, alice))["data"]["status"] == "online"

        # The same status again changes nothing anyone sees: no event.
        await set_status(on_a, "online")
        [pending] = await barrier_one(presence_cluster, watcher)
        assert [m for m in pending if m["type"] == "presence"] == []
        await on_a.close()
    finally:
        await close_all(watcher)


async def barrier_one(cluster: Cluster, *peers: Peer) -> list[list[Message]]:
    client = aioredis.Redis.from_url(cluster.redis.url)
    try:
        return await barrier(client, *peers)
    finally:
        await client.aclose()


async def test_offline_comes_after_the_grace_period_with_last_seen(
    presence_cluster: Cluster,
) -> None:
    a_gw, b_gw = presence_cluster.gateways
    group = uid("g")
    alice = uid("alice")
    on_a = await join(a_gw, alice, [group])
    watcher = await join(b_gw, uid("bob"), [group])
    try:
        await subscribe(watcher, alice)
        await on_a.close()
        event = await presence_of(watcher, alice)
        assert event["data"]["status"] == "offline"
        assert event["data"]["lastSeen"] == event["data"]["timestamp"]
    finally:
        await close_all(watcher)


async def test_a_reconnect_within_the_grace_period_does_not_flap(
    presence_cluster: Cluster, raw_redis: aioredis.Redis
) -> None:
    a_gw, b_gw = presence_cluster.gateways
    group = uid("g")
    alice = uid("alice")
    first = await join(a_gw, alice, [group])
    watcher = await join(b_gw, uid("bob"), [group])
    again = None
    try:
        await subscribe(watcher, alice)
        gone = f"{first.conn_id} {alice}"
        await first.close()
        again = await join(b_gw, alice, [group])  # back, on the other instance

        async def swept() -> bool | None:
            return True if await raw_redis.zscore("roomcast:presence:expiry", gone) is None \
                else None

        # The old connection's entry outlived the grace period and was swept...
        await eventually(swept, "the closed connection's entry swept", deadline=20)
        # ...and the watcher heard nothing: no offline, no second online.
        [pending] = await barrier(raw_redis, watcher)
        assert [m for m in pending if m["type"] == "presence"] == []
    finally:
        await close_all(watcher, *([again] if again else []))


async def test_a_crashed_instances_users_go_offline(
    presence_cluster: Cluster, raw_redis: aioredis.Redis
) -> None:
    env = {**presence_cluster.gateways[0].env, "ROOMCAST_SERVER_ID": uid("doomed")}
    doomed = GatewayProcess(env=env)
    doomed.secret = presence_cluster.secret
    doomed.start()
    group = uid("g")
    alice = uid("alice")
    watcher = await join(presence_cluster.gateways[1], uid("bob"), [group])
    try:
        await join(doomed, alice, [group])
        assert (await subscribe(watcher, alice))["data"]["status"] == "online"
        doomed.kill()  # SIGKILL: nobody removes anything
        event = await presence_of(watcher, alice)
        assert event["data"]["status"] == "offline"
        assert await raw_redis.hlen(f"roomcast:presence:user:{alice}") == 0
    finally:
        doomed.close()
        await close_all(watcher)


async def test_subscribing_to_a_user_sharing_no_room_is_forbidden(
    presence_cluster: Cluster,
) -> None:
    a_gw, b_gw = presence_cluster.gateways
    alice = uid("alice")
    on_a = await join(a_gw, alice, [uid("g")])
    stranger = await join(b_gw, uid("eve"), [uid("other")])
    try:
        for user in (alice, uid("nobody")):  # the same answer for an unknown user
            reply = await stranger.request({"id": uid("s"), "type": "system",
                                            "data": {"action": "subscribe_presence",
                                                     "userId": user}})
            assert reply["type"] == "error" and reply["data"]["code"] == "forbidden", reply
        # Nothing leaks afterwards either.
        await set_status(on_a, "away")
        [pending] = await barrier_one(presence_cluster, stranger)
        assert [m for m in pending if m["type"] == "presence"] == []
    finally:
        await close_all(on_a, stranger)


async def test_leaving_the_shared_room_stops_the_events(presence_cluster: Cluster) -> None:
    a_gw, b_gw = presence_cluster.gateways
    group = uid("g")
    alice = uid("alice")
    on_a = await join(a_gw, alice, [group])
    watcher = await join(b_gw, uid("bob"), [group])
    try:
        await subscribe(watcher, alice)
        left = await watcher.request({"id": "l", "type": "system",
                                      "data": {"action": "leave", "room": f"group:{group}"}})
        assert left["data"]["status"] == "ok", left
        await set_status(on_a, "away")
        [pending] = await barrier_one(presence_cluster, watcher)
        assert [m for m in pending if m["type"] == "presence"] == []
    finally:
        await close_all(on_a, watcher)


async def test_unsubscribe_is_answered_and_stops_the_events(presence_cluster: Cluster) -> None:
    a_gw, b_gw = presence_cluster.gateways
    group = uid("g")
    alice = uid("alice")
    on_a = await join(a_gw, alice, [group])
    watcher = await join(b_gw, uid("bob"), [group])
    try:
        await subscribe(watcher, alice)
        reply = await watcher.request({"id": "u", "type": "system",
                                       "data": {"action": "unsubscribe_presence",
                                                "userId": alice}})
        assert reply["data"]["status"] == "ok" and reply["data"]["changed"] is True, reply
        await set_status(on_a, "away")
        [pending] = await barrier_one(presence_cluster, watcher)
        assert [m for m in pending if m["type"] == "presence"] == []
    finally:
        await close_all(on_a, watcher)


@pytest.mark.parametrize(
    ("data", "code"),
    [({"status": "sleeping"}, "invalid_field"), ({"metadata": [1]}, "invalid_field"),
     ({"metadata": {"x": "y" * 3000}}, "invalid_field"), ({"userId": "someone-else"}, "forbidden")],
)
async def test_bad_presence_messages_get_an_error_by_id(
    presence_cluster: Cluster, data: dict[str, Any], code: str
) -> None:
    peer = await join(presence_cluster.gateways[0], uid("u"))
    try:
        reply = await peer.request({"id": "bad", "type": "presence", "data": data})
        assert reply["type"] == "error" and reply["data"]["code"] == code, reply
        ok = await set_status(peer, "online")  # the connection goes on
        assert ok["type"] == "presence"
    finally:
        await close_all(peer)


async def test_own_presence_reply_keeps_the_compat_fields(presence_cluster: Cluster) -> None:
    user = uid("u")
    peer = await join(presence_cluster.gateways[0], user)
    try:
        reply = await peer.request({"id": "p", "type": "presence", "data": {}})
        assert reply["data"]["status"] == "online" and reply["data"]["user_id"] == user
        assert reply["data"]["userId"] == user and reply["data"]["timestamp"]
    finally:
        await close_all(peer)


async def _control_until(pubsub: Any, marker: str) -> list[bytes]:
    """Control-channel payloads received before ``marker`` (published after them)."""
    seen: list[bytes] = []
    async with asyncio.timeout(30.0):
        while True:
            # None for the subscription's own confirmation (and on a read timeout).
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=30.0)
            if msg is None:
                continue
            if msg["data"] == marker.encode():
                return seen
            seen.append(msg["data"])


async def test_a_change_nobody_follows_is_not_published(
    presence_cluster: Cluster, raw_redis: aioredis.Redis
) -> None:
    a_gw, b_gw = presence_cluster.gateways
    group = uid("g")
    alice = uid("alice")
    pubsub = raw_redis.pubsub()
    await pubsub.subscribe("roomcast:control")
    try:
        on_a = await join(a_gw, alice, [group])  # returns once the connect's events are out
        await raw_redis.publish("roomcast:control", "marker-1")
        heard = await _control_until(pubsub, "marker-1")
        assert [m for m in heard if alice.encode() in m] == []
        # Followed from the other instance: the same kind of change is published.
        watcher = await join(b_gw, uid("bob"), [group])
        await subscribe(watcher, alice)
        await set_status(on_a, "away")
        assert (await presence_of(watcher, alice))["data"]["status"] == "away"
        await raw_redis.publish("roomcast:control", "marker-2")
        heard = await _control_until(pubsub, "marker-2")
        assert any(b"presence_changed" in m and alice.encode() in m for m in heard), heard
        # Not followed any more (the watcher closed): quiet again.
        await watcher.close()
        await set_status(on_a, "online")

        async def unfollowed() -> bool | None:
            return True if not await raw_redis.exists(
                f"roomcast:presence:followers:{alice}") else None

        await eventually(unfollowed, "the closed watcher's instance to stop following")
        await set_status(on_a, "away")
        await raw_redis.publish("roomcast:control", "marker-3")
        heard = await _control_until(pubsub, "marker-3")
        assert [m for m in heard if b"presence_changed" in m and b'"away"' in m] == [], heard
        await on_a.close()
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
