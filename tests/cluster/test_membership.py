"""Membership changes through one instance move live connections on the others,
and the store (Redis, the default with ``REDIS_URL``) is one for the whole cluster."""

from __future__ import annotations

import httpx
import pytest
import redis.asyncio as aioredis

from tests.cluster.support import (
    Cluster,
    assert_quiet,
    barrier,
    close_all,
    collect,
    join,
    registered,
    uid,
    unregistered,
)
from tests.helpers.ws import Message, Peer, connect_peer

pytestmark = pytest.mark.redis


def about_sibling(msgs: list[Message], action: str, sibling: str) -> list[Message]:
    """The ``room_update`` events about the user's other connection among ``msgs``.

    Both connections move at once on two instances, so each may or may not see the
    other's move, depending on which instance was first: that part is not asserted.
    """
    updates = [m for m in msgs if m["type"] == "room_update"]
    for u in updates:
        assert u["data"]["action"] == action and u["data"]["connection_id"] == sibling, u
    return updates


async def moved(peer: Peer, sibling: Peer, action: str) -> list[Message]:
    """The peer's own events of a membership move, the sibling's room_update set aside."""
    got = await collect(peer, lambda m: m["type"] == "group_membership_change")
    noise = about_sibling(got, action, sibling.conn_id)
    return [m for m in got if m not in noise]


async def test_put_on_one_instance_moves_the_users_connections_on_the_others(
    cluster: Cluster, apis: list[httpx.AsyncClient], raw: aioredis.Redis
) -> None:
    _, b, c = cluster.gateways
    group, user = uid("g"), uid("u")
    room = f"group:{group}"
    on_b, on_c = await join(b, user), await join(c, user)
    member = await join(c, uid("m"), [group])
    try:
        await registered(apis[0], member.conn_id, room)
        await barrier(raw, on_b, on_c, member)

        r = await apis[0].put(f"/websocket/users/{user}/groups/{group}", json={"name": "Pilots"})
        assert r.status_code == 200 and r.json()["changed"] is True, r.text
        for peer, sibling in ((on_b, on_c), (on_c, on_b)):
            got = await moved(peer, sibling, "member_joined")
            assert [m["type"] for m in got] == ["room_joined", "group_membership_change"], got
            joined, change = got
            assert joined["room"] == room and joined["data"]["name"] == "Group: Pilots"
            assert joined["data"]["type"] == "group"
            assert {k: change["data"][k] for k in ("user_id", "group_id", "group_name",
                                                   "joined")} == {
                "user_id": user, "group_id": group, "group_name": "Pilots", "joined": True}
            assert room in peer.rooms
        updates = [await member.expect("room_update") for _ in range(2)]
        assert {u["data"]["connection_id"] for u in updates} == {on_b.conn_id, on_c.conn_id}
        assert all(u["data"]["action"] == "member_joined" for u in updates)
        pending = await barrier(raw, on_b, on_c, member)
        about_sibling(pending[0], "member_joined", on_c.conn_id)
        about_sibling(pending[1], "member_joined", on_b.conn_id)
        assert pending[2] == []

        # The moved connection is a member now: its room message reaches the group.
        ack = await on_b.request({"id": uid("m"), "type": "message", "room": room,
                                  "data": {"text": "hello pilots"}})
        assert ack["data"]["status"] == "ok", ack
        message = await member.expect("message")
        assert message["from"] == on_b.conn_id and message["room"] == room
        await barrier(raw, on_b, on_c, member)

        r = await apis[2].delete(f"/websocket/users/{user}/groups/{group}")
        assert r.status_code == 200 and r.json()["changed"] is True, r.text
        for peer, sibling in ((on_b, on_c), (on_c, on_b)):
            got = await moved(peer, sibling, "member_left")
            assert [m["type"] for m in got] == ["room_left", "group_membership_change"], got
            left, change = got
            assert left["room"] == room and left["data"]["reason"] == "membership_removed"
            assert change["data"]["joined"] is False and change["data"]["group_id"] == group
            assert room not in peer.rooms
        updates = [await member.expect("room_update") for _ in range(2)]
        assert {u["data"]["connection_id"] for u in updates} == {on_b.conn_id, on_c.conn_id}
        assert all(u["data"]["action"] == "member_left" for u in updates)
        pending = await barrier(raw, on_b, on_c, member)
        about_sibling(pending[0], "member_left", on_c.conn_id)
        about_sibling(pending[1], "member_left", on_b.conn_id)
        assert pending[2] == []

        refused = await on_c.request({"id": uid("m"), "type": "message", "room": room,
                                      "data": {"text": "still here?"}})
        assert refused["type"] == "error" and refused["data"]["code"] == "forbidden", refused
        # Removing again changes nothing and sends nothing, anywhere (once the registry
        # no longer lists the room for the user's connections: until then the instance
        # asked counts them as still holding it).
        for peer in (on_b, on_c):
            await unregistered(apis[1], peer.conn_id, room)
        r = await apis[1].delete(f"/websocket/users/{user}/groups/{group}")
        assert r.status_code == 200 and r.json()["changed"] is False, r.text
        await assert_quiet(raw, on_b, on_c, member)
    finally:
        await close_all(on_b, on_c, member)


async def test_a_membership_added_on_one_instance_holds_for_later_connections_elsewhere(
    cluster: Cluster, apis: list[httpx.AsyncClient]
) -> None:
    _, b, c = cluster.gateways
    group, user = uid("g"), uid("u")
    room = f"group:{group}"
    r = await apis[0].put(f"/websocket/users/{user}/groups/{group}", json={"name": "Later"})
    assert r.status_code == 200 and r.json()["changed"] is True, r.text
    r = await apis[2].get(f"/websocket/users/{user}/groups")
    assert r.json()["groups"] == [{"id": group, "name": "Later"}], r.text

    # The token names no group: the store of the cluster does.
    later = await connect_peer(b, user)
    try:
        joined = await later.expect(lambda m: m["type"] == "room_joined" and m["room"] == room)
        assert joined["data"]["name"] == "Group: Later", joined
    finally:
        await later.close()

    r = await apis[1].delete(f"/websocket/users/{user}/groups/{group}")
    assert r.status_code == 200 and r.json()["changed"] is True, r.text
    after = await join(c, user)
    try:
        assert after.rooms == {f"user:{user}"}  # every room_joined precedes the pong
    finally:
        await after.close()


async def test_room_update_counts_follow_moves_in_and_out_on_another_instance(
    cluster: Cluster, apis: list[httpx.AsyncClient], raw: aioredis.Redis
) -> None:
    a, b, _ = cluster.gateways
    group, user = uid("g"), uid("u")
    room = f"group:{group}"
    member = await join(a, uid("m"), [group])
    mover = await join(b, user)
    try:
        await registered(apis[1], member.conn_id, room)
        for leave in ("membership DELETE", "client leave"):
            r = await apis[0].put(f"/websocket/users/{user}/groups/{group}")
            assert r.status_code == 200 and r.json()["changed"] is True, r.text
            update = await member.expect("room_update")
            assert (update["data"]["action"], update["data"]["member_count"]) == (
                "member_joined", 2), update
            await registered(apis[0], mover.conn_id, room)
            if leave == "membership DELETE":
                r = await apis[2].delete(f"/websocket/users/{user}/groups/{group}")
                assert r.status_code == 200 and r.json()["changed"] is True, r.text
            else:
                reply = await mover.request({"type": "system", "id": uid("l"),
                                             "data": {"action": "leave", "room": room}})
                assert reply["data"]["status"] == "ok", reply
                r = await apis[2].delete(f"/websocket/users/{user}/groups/{group}")
                assert r.status_code == 200, r.text
            update = await member.expect("room_update")
            # The mover is out: Redis may still list it for a moment, the count may not.
            assert (update["data"]["action"], update["data"]["member_count"]) == (
                "member_left", 1), (leave, update)
            await barrier(raw, member, mover)
    finally:
        await close_all(member, mover)
