"""Every delivery path crosses instances: rooms, users, connections, everyone, events.

Three gateways share one Redis (module-scoped); each test has users and groups of
its own. "Not others" is checked with :func:`barrier`: a marker sent through Redis
after the message queues behind it everywhere, so what was not received before the
marker was not delivered.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
import redis.asyncio as aioredis

from tests.cluster.support import (
    DEADLINE,
    Cluster,
    assert_quiet,
    barrier,
    close_all,
    collect,
    eventually,
    join,
    join_unread,
    ping,
    registered,
    reply_to,
    uid,
    with_text,
)
from tests.helpers.problems import bare

pytestmark = pytest.mark.redis


async def test_client_room_message_reaches_members_on_every_instance(
    cluster: Cluster, apis: list[httpx.AsyncClient], raw: aioredis.Redis
) -> None:
    a, b, c = cluster.gateways
    group = uid("g")
    room = f"group:{group}"
    sender = await join(a, uid("sender"), [group])
    on_b = await join(b, uid("bob"), [group])
    on_c = await join(c, uid("carol"), [group])
    outsider = await join(b, uid("out"), [uid("other")])
    peers = (sender, on_b, on_c, outsider)
    try:
        await barrier(raw, *peers)  # past the room_update events of the joins
        text, mid = uid("t"), uid("m")
        await sender.send({"id": mid, "type": "message", "room": room, "data": {"text": text}})
        own = await collect(sender, reply_to(mid))
        assert own[-1]["type"] == "system" and own[-1]["data"]["status"] == "ok", own
        message_id = own[-1]["data"]["message_id"]
        for peer in (on_b, on_c):
            got = await peer.expect(lambda m: m.get("id") == message_id)
            assert got["type"] == "message" and got["room"] == room, got
            assert got["from"] == sender.conn_id and got["data"] == {"text": text}, got
        # Exactly one copy each (the sender gets its own room message too), none outside.
        pending = await barrier(raw, *peers)
        assert len(with_text(own + pending[0], text)) == 1
        assert with_text(pending[1], text) == [] and with_text(pending[2], text) == []
        assert pending[3] == []
    finally:
        await close_all(*peers)


async def test_admin_room_message_crosses_instances_with_cluster_wide_count(
    cluster: Cluster, apis: list[httpx.AsyncClient], raw: aioredis.Redis
) -> None:
    group = uid("g")
    room = f"group:{group}"
    members = [await join(gw, uid("m"), [group]) for gw in cluster.gateways]
    outsider = await join(cluster.gateways[1], uid("out"))
    try:
        for peer in members:
            await registered(apis[0], peer.conn_id, room)
        await barrier(raw, *members, outsider)
        text = uid("t")
        r = await apis[0].post(f"/websocket/rooms/{room}/message",
                               json={"type": "notification", "data": {"text": text}})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["success"] is True and body["recipients_count"] == 3, body
        for peer in members:
            got = await peer.expect(lambda m: m.get("id") == body["message_id"])
            assert got["type"] == "notification" and got["room"] == room, got
            assert got["data"] == {"text": text}
        pending = await barrier(raw, *members, outsider)
        assert all(with_text(msgs, text) == [] for msgs in pending), pending
    finally:
        await close_all(*members, outsider)


async def test_admin_user_message_reaches_the_users_connections_everywhere(
    cluster: Cluster, apis: list[httpx.AsyncClient], raw: aioredis.Redis
) -> None:
    a, b, c = cluster.gateways
    user = uid("u")
    on_a, on_c = await join(a, user), await join(c, user)
    other = await join(b, uid("other"))
    try:
        for peer in (on_a, on_c):
            await registered(apis[1], peer.conn_id)
        await barrier(raw, on_a, on_c, other)
        text = uid("t")
        r = await apis[1].post(f"/websocket/users/{user}/message",
                               json={"type": "notification", "data": {"text": text}})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["recipients_count"] == 2, body
        for peer in (on_a, on_c):
            got = await peer.expect(lambda m: m.get("id") == body["message_id"])
            # Other instances route user messages by data.user_id.
            assert got["data"] == {"text": text, "user_id": user}, got
        pending = await barrier(raw, on_a, on_c, other)
        assert all(with_text(msgs, text) == [] for msgs in pending), pending
    finally:
        await close_all(on_a, on_c, other)


async def test_admin_connection_message_reaches_that_connection_only(
    cluster: Cluster, apis: list[httpx.AsyncClient], raw: aioredis.Redis
) -> None:
    a, _, c = cluster.gateways
    user = uid("u")
    target, sibling = await join(a, user), await join(a, user)
    elsewhere = await join(c, user)
    try:
        await registered(apis[2], target.conn_id)
        await barrier(raw, target, sibling, elsewhere)
        text = uid("t")
        r = await apis[2].post(f"/websocket/connections/{target.conn_id}/message",
                               json={"type": "notification", "data": {"text": text}})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["recipients_count"] == 1, body
        got = await target.expect(lambda m: m.get("id") == body["message_id"])
        assert got["to"] == target.conn_id and got["data"] == {"text": text}, got
        pending = await barrier(raw, target, sibling, elsewhere)
        assert all(with_text(msgs, text) == [] for msgs in pending), pending
        # An id no instance knows is a 404, not a silent success.
        r = await apis[2].post(f"/websocket/connections/{uid('gone')}/message",
                               json={"type": "notification", "data": {}})
        assert r.status_code == 404, r.text
    finally:
        await close_all(target, sibling, elsewhere)


async def test_admin_broadcast_reaches_every_connection_once(
    own_cluster: Cluster, own_apis: list[httpx.AsyncClient]
) -> None:
    cluster, apis = own_cluster, own_apis
    peers = [await join(gw, uid("u")) for gw in cluster.gateways]
    raw = aioredis.Redis.from_url(cluster.redis.url)
    try:

        async def settled() -> bool | None:
            # Registry writes reach Redis a moment after the connects.
            r = await apis[0].get("/websocket/status")
            return True if r.json()["cluster"]["connections"] == len(peers) else None

        await eventually(settled, "the cluster to count this test's connections")
        await barrier(raw, *peers)
        text = uid("t")
        r = await apis[0].post("/websocket/broadcast",
                               json={"type": "system_notification", "data": {"text": text}})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["recipients_count"] == 3, body
        for peer in peers:
            got = await peer.expect(lambda m: m.get("id") == body["message_id"])
            assert got["type"] == "system_notification" and got["data"] == {"text": text}
        await assert_quiet(raw, *peers)
    finally:
        await raw.aclose()
        await close_all(*peers)


async def test_direct_message_to_a_connection_on_another_instance(
    cluster: Cluster, apis: list[httpx.AsyncClient], raw: aioredis.Redis
) -> None:
    a, b, c = cluster.gateways
    group = uid("g")
    alice = await join(a, uid("alice"), [group])
    bob = await join(b, uid("bob"), [group])
    stranger = await join(c, uid("carol"), [uid("other")])
    try:
        await registered(apis[0], bob.conn_id, f"group:{group}")
        await registered(apis[0], stranger.conn_id)
        await barrier(raw, alice, bob, stranger)
        text, mid = uid("t"), uid("d")
        ack = await alice.request({"id": mid, "type": "message", "to": bob.conn_id,
                                   "data": {"text": text}})
        assert ack["type"] == "system" and ack["data"]["status"] == "ok", ack
        got = await bob.expect(lambda m: m.get("id") == ack["data"]["message_id"])
        assert got["to"] == bob.conn_id and got["from"] == alice.conn_id, got
        assert got["data"] == {"text": text}
        # A connection on another instance with no shared room cannot be addressed.
        refused = await alice.request({"id": uid("d"), "type": "message",
                                       "to": stranger.conn_id, "data": {"text": text}})
        assert refused["type"] == "error" and refused["data"]["code"] == "forbidden", refused
        await assert_quiet(raw, alice, bob, stranger)
    finally:
        await close_all(alice, bob, stranger)


async def test_profile_update_reaches_the_users_connections_everywhere(
    cluster: Cluster, apis: list[httpx.AsyncClient], raw: aioredis.Redis
) -> None:
    _, b, c = cluster.gateways
    user = uid("u")
    on_b, on_c = await join(b, user), await join(c, user)
    other = await join(c, uid("other"))
    try:
        await barrier(raw, on_b, on_c, other)
        profile = {"name": "Ada", "corporation": uid("corp")}
        r = await apis[0].post(f"/websocket/users/{user}/profile",
                               json={"character_id": 90000001, "profile": profile})
        assert r.status_code == 200, r.text
        for peer in (on_b, on_c):
            got = await peer.expect("user_profile_update")
            assert got["id"] == r.json()["message_id"], got
            assert got["data"]["user_id"] == user and got["data"]["profile"] == profile
            assert got["data"]["character_id"] == 90000001
        await assert_quiet(raw, on_b, on_c, other)
    finally:
        await close_all(on_b, on_c, other)


async def test_room_events_cross_instances_with_cluster_wide_counts(
    cluster: Cluster, apis: list[httpx.AsyncClient], raw: aioredis.Redis
) -> None:
    a, b, c = cluster.gateways
    group = uid("g")
    room = f"group:{group}"
    first = await join(a, uid("first"), [group])
    second = third = None
    try:
        # No wait for the registry: each instance counts a room after its own write.
        second = await join_unread(b, uid("second"), [group])
        joined = await second.recv()
        assert joined["type"] == "room_joined" and joined["room"] == room, joined
        assert joined["data"]["member_count"] == 2, joined
        await ping(second)
        update = await first.expect("room_update")
        assert update["room"] == room and update["data"] == {
            "action": "member_joined", "room_id": room, "member_count": 2,
            "connection_id": second.conn_id,
            "user_id": second.welcome["data"]["user_id"]}, update

        third = await join(c, uid("third"), [group])
        for peer in (first, second):
            update = await peer.expect("room_update")
            assert update["data"]["connection_id"] == third.conn_id, update
            assert update["data"]["member_count"] == 3, update

        await second.close()
        for peer in (first, third):
            update = await peer.expect("room_update")
            assert update["data"]["action"] == "member_left", update
            assert update["data"]["connection_id"] == second.conn_id, update
            assert update["data"]["member_count"] == 2, update
        await assert_quiet(raw, first, third)
    finally:
        await close_all(*(p for p in (first, second, third) if p is not None))


async def test_admin_disconnect_closes_a_connection_on_another_instance(
    cluster: Cluster, apis: list[httpx.AsyncClient], raw: aioredis.Redis
) -> None:
    _, b, c = cluster.gateways
    user = uid("u")
    target, sibling = await join(b, user), await join(c, user)
    try:
        await registered(apis[0], target.conn_id)
        await barrier(raw, target, sibling)
        r = await apis[0].post(f"/websocket/connections/{target.conn_id}/disconnect")
        assert r.status_code == 200, r.text
        assert bare(r) == {"success": True, "connection_id": target.conn_id, "user_id": user}
        async with asyncio.timeout(DEADLINE):
            await target.ws.wait_closed()
        assert target.ws.close_code == 3500  # kicked: the React client does not reconnect
        # The user's other connection stays, and only hears that this one left.
        update = await sibling.expect("room_update")
        assert update["data"]["action"] == "member_left", update
        assert update["data"]["connection_id"] == target.conn_id
        await assert_quiet(raw, sibling)
    finally:
        await close_all(target, sibling)
