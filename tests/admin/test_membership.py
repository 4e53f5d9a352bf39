"""Membership PUT/DELETE move live connections at once, with their events, exactly once."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.admin.support import (
    assert_next_is_marker,
    collect_until,
    connect_same_user,
    of_type,
    uid,
)
from tests.helpers.gateway import GatewayProcess
from tests.helpers.problems import bare, problem
from tests.helpers.ws import connect_peer


async def test_put_and_delete_move_a_live_connection(admin_gw: GatewayProcess,
                                                     api: httpx.AsyncClient) -> None:
    user, member_id, group = uid("mem"), uid("member"), uid("grp")
    room = f"group:{group}"
    peer = await connect_peer(admin_gw, user)
    member = await connect_peer(admin_gw, member_id, groups=[group])  # already in the room
    path = f"/websocket/users/{user}/groups/{group}"

    r = await api.put(path, json={"name": "Green team"})
    assert r.status_code == 200
    assert bare(r) == {"changed": True, "user_id": user, "group_id": group,
                        "group_name": "Green team", "joined": True}
    joined = await peer.recv()
    assert joined["type"] == "room_joined" and joined["room"] == room
    assert joined["data"]["name"] == "Group: Green team"
    assert joined["data"]["member_count"] == 2
    change = await peer.recv()
    assert change["type"] == "group_membership_change"
    assert change["data"] == {"user_id": user, "group_id": group, "group_name": "Green team",
                              "joined": True, "timestamp": change["data"]["timestamp"]}
    update = await member.recv()
    assert update["type"] == "room_update"
    assert update["data"] == {"action": "member_joined", "room_id": room, "member_count": 2,
                              "connection_id": peer.conn_id,
                              "user_id": user}
    assert peer.rooms == {f"user:{user}", room}

    # The member's room now reaches the user too.
    r = await api.post(f"/websocket/rooms/{room}/message", json={"type": "message", "data": {}})
    assert r.json()["recipients_count"] == 2
    assert (await peer.recv())["id"] == r.json()["message_id"]
    assert (await member.recv())["id"] == r.json()["message_id"]

    # A repeat (same name, or no body) changes nothing and sends nothing.
    for repeat in ({"name": "Green team"}, None):
        r = await api.put(path, json=repeat) if repeat else await api.put(path)
        assert r.status_code == 200
        assert bare(r) == {"changed": False, "user_id": user, "group_id": group,
                            "group_name": "Green team", "joined": True}
    await assert_next_is_marker(api, peer, user)
    await assert_next_is_marker(api, member, member_id)
    groups = (await api.get(f"/websocket/users/{user}/groups")).json()["groups"]
    assert groups == [{"id": group, "name": "Green team"}]

    r = await api.delete(path)
    assert r.status_code == 200
    assert bare(r) == {"changed": True, "user_id": user, "group_id": group,
                        "group_name": None, "joined": False}
    left = await peer.recv()
    assert left["type"] == "room_left" and left["room"] == room
    assert left["data"]["reason"] == "membership_removed"
    change = await peer.recv()
    assert change["type"] == "group_membership_change"
    assert change["data"]["joined"] is False and change["data"]["group_name"] == "Green team"
    update = await member.recv()
    assert update["data"] == {"action": "member_left", "room_id": room, "member_count": 1,
                              "connection_id": peer.conn_id,
                              "user_id": user}
    assert peer.rooms == {f"user:{user}"}

    r = await api.delete(path)
    assert r.status_code == 200 and r.json()["changed"] is False
    await assert_next_is_marker(api, peer, user)
    await assert_next_is_marker(api, member, member_id)
    assert (await api.get(f"/websocket/users/{user}/groups")).json()["groups"] == []
    # The room's messages no longer reach the user.
    r = await api.post(f"/websocket/rooms/{room}/message", json={"type": "message", "data": {}})
    assert r.json()["recipients_count"] == 1
    await peer.close()
    await member.close()


async def test_every_connection_of_the_user_moves(admin_gw: GatewayProcess,
                                                  api: httpx.AsyncClient) -> None:
    user, group = uid("multi"), uid("grp")
    peers = await connect_same_user(admin_gw, user, 3)
    r = await api.put(f"/websocket/users/{user}/groups/{group}", json={"name": "G"})
    assert r.json()["changed"] is True
    for peer in peers:
        msgs = await collect_until(peer, "group_membership_change")
        assert len(of_type(msgs, "room_joined", room=f"group:{group}")) == 1
        assert f"group:{group}" in peer.rooms
    listed = await api.get("/websocket/connections", params={"room_id": f"group:{group}"})
    assert {c["id"] for c in listed.json()["connections"]} == {p.conn_id for p in peers}

    r = await api.delete(f"/websocket/users/{user}/groups/{group}")
    assert r.json()["changed"] is True
    for peer in peers:
        msgs = await collect_until(peer, "group_membership_change")
        assert len(of_type(msgs, "room_left", room=f"group:{group}")) == 1
        assert peer.rooms == {f"user:{user}"}
    assert (await api.get(f"/websocket/rooms/group:{group}")).status_code == 404
    for peer in peers:
        await peer.close()


async def test_membership_applies_to_later_connections(admin_gw: GatewayProcess,
                                                       api: httpx.AsyncClient) -> None:
    user, group = uid("later"), uid("grp")
    r = await api.put(f"/websocket/users/{user}/groups/{group}")
    assert bare(r) == {"changed": True, "user_id": user, "group_id": group,
                        "group_name": group, "joined": True}
    peer = await connect_peer(admin_gw, user)  # reads its personal room's room_joined
    joined = await peer.expect("room_joined")
    assert joined["room"] == f"group:{group}" and joined["data"]["name"] == f"Group: {group}"
    await peer.close()


@pytest.mark.parametrize(("path", "kwargs", "field"), [
    ("/websocket/users/u1/groups/g1", {"json": {"name": ""}}, "body.name"),
    ("/websocket/users/u1/groups/g1", {"json": {"name": "a" * 65}}, "body.name"),
    ("/websocket/users/u1/groups/g1", {"json": {"name": "tab\there"}}, "body.name"),
    ("/websocket/users/u1/groups/g1", {"json": {"name": 5}}, "body.name"),
    ("/websocket/users/u1/groups/bad%20group", {"json": {"name": "x"}}, "path.group_id"),
    ("/websocket/users/bad!user/groups/g1", {}, "path.user_id"),
])
async def test_invalid_membership_is_422(api: httpx.AsyncClient, path: str,
                                         kwargs: dict[str, Any], field: str) -> None:
    for method in ("PUT", "DELETE") if not kwargs else ("PUT",):
        r = await api.request(method, path, **kwargs)
        assert problem(r, 422)["errors"][0]["location"] == field


@pytest.mark.parametrize("body", [b" ", b" \r\n\t", b"\x0c", b"\x0b \n", b"\x1c"])
async def test_a_body_of_whitespace_is_invalid_json_not_an_absent_body(
        api: httpx.AsyncClient, body: bytes) -> None:
    r = await api.put("/websocket/users/u1/groups/g1", content=body,
                      headers={"Content-Type": "application/json"})
    assert problem(r, 422, "invalid_json")
    r = await api.put("/websocket/users/u1/groups/g1")  # no body at all: the default name
    assert r.status_code == 200
