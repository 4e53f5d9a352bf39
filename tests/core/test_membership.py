"""A membership change while connected moves the rooms of all the user's live connections."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.core.support import drain, next_is_marker, quiet, send_marker, unique
from tests.helpers.gateway import GatewayProcess
from tests.helpers.tokens import make_token
from tests.helpers.ws import TIMEOUT, Message, connect_peer


@pytest.fixture(scope="module")
def login_gateway() -> Iterator[GatewayProcess]:
    """JWT_SECRET is set, so the dev login needs turning on."""
    gw = GatewayProcess(env={"ROOMCAST_DEV_LOGIN": "on"}).start()
    yield gw
    gw.close()


async def admin(gw: GatewayProcess, method: str, path: str, **kw: Any) -> httpx.Response:
    token = make_token(gw.secret, unique("admin"), scopes="websocket:admin")
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=TIMEOUT,
                                 headers={"Authorization": f"Bearer {token}"}) as http:
        return await http.request(method, path, **kw)


def _detail(m: Message) -> Any:
    data = m["data"]
    if m["type"] == "room_joined":
        return (m["room"], data["name"])
    if m["type"] == "room_left":
        return m["room"]
    if m["type"] == "group_membership_change":
        return (data["group_id"], data["joined"])
    if m["type"] == "room_update":
        return (data["action"], data["connection_id"])
    return data


def summary(msgs: list[Message]) -> list[tuple[str, Any]]:
    """(type, the detail that matters) of each message, for exact comparisons."""
    return [(m["type"], _detail(m)) for m in msgs]


async def test_adding_and_removing_a_group_moves_every_live_connection(
    gateway: GatewayProcess,
) -> None:
    user, group = unique("mover"), unique("g")
    room = f"group:{group}"
    phone = await connect_peer(gateway, user)
    laptop = await connect_peer(gateway, user)
    member = await connect_peer(gateway, unique("member"), groups=[group])
    await phone.expect("room_update")  # laptop joined user:{user}
    peers = {phone.conn_id: phone, laptop.conn_id: laptop}
    try:
        resp = await admin(gateway, "PUT", f"/websocket/users/{user}/groups/{group}",
                           json={"name": "Green team"})
        assert resp.status_code == 200, resp.text
        assert resp.json()["changed"] is True
        sibling_events = 0
        for conn_id, peer in peers.items():
            got = summary(await drain(peer))
            (sibling,) = [c for c in peers if c != conn_id]
            if ("room_update", ("member_joined", sibling)) in got:  # whichever moved second
                got.remove(("room_update", ("member_joined", sibling)))
                sibling_events += 1
            assert got == [("room_joined", (room, "Group: Green team")),
                           ("group_membership_change", (group, True))]
            assert room in peer.rooms
        assert sibling_events == 1
        assert sorted(summary(await drain(member))) == sorted(
            ("room_update", ("member_joined", c)) for c in peers)
        tag = await send_marker(member, room)
        for peer in peers.values():
            await next_is_marker(peer, tag)

        again = await admin(gateway, "PUT", f"/websocket/users/{user}/groups/{group}",
                            json={"name": "Green team"})
        assert again.status_code == 200 and again.json()["changed"] is False
        for peer in peers.values():
            await quiet(peer)  # a repeat sends nothing

        resp = await admin(gateway, "DELETE", f"/websocket/users/{user}/groups/{group}")
        assert resp.status_code == 200 and resp.json()["changed"] is True
        sibling_events = 0
        for conn_id, peer in peers.items():
            got = summary(await drain(peer))
            (sibling,) = [c for c in peers if c != conn_id]
            if ("room_update", ("member_left", sibling)) in got:  # whichever moved second
                got.remove(("room_update", ("member_left", sibling)))
                sibling_events += 1
            assert got == [("room_left", room), ("group_membership_change", (group, False))]
            assert room not in peer.rooms
        assert sibling_events == 1
        assert sorted(summary(await drain(member))) == sorted(
            ("room_update", ("member_left", c)) for c in peers)
        await member.request({"id": "after", "type": "message", "room": room, "data": {}})
        for peer in peers.values():
            await quiet(peer)  # no longer delivered
        rejoin = await phone.request({"id": "rj", "type": "system",
                                      "data": {"action": "join", "room": room}})
        assert rejoin["data"]["code"] == "forbidden"  # no longer entitled
    finally:
        for peer in (phone, laptop, member):
            await peer.close()


async def test_dev_login_with_groups_moves_a_connected_user(
    login_gateway: GatewayProcess,
) -> None:
    gw = login_gateway
    user, group = unique("dev"), unique("g")
    peer = await connect_peer(gw, user)
    try:
        async with httpx.AsyncClient(base_url=gw.base_url, timeout=TIMEOUT) as http:
            resp = await http.post("/login", data={"user_id": user, "groups": f"{group}:Ops"})
        assert resp.status_code == 303
        joined = await peer.expect("room_joined")
        assert joined["room"] == f"group:{group}" and joined["data"]["name"] == "Group: Ops"
        change = await peer.expect("group_membership_change")
        assert change["data"]["joined"] is True and change["data"]["group_id"] == group
    finally:
        await peer.close()


async def test_a_membership_of_another_user_moves_nobody_else(gateway: GatewayProcess) -> None:
    user, bystander, group = unique("target"), unique("other"), unique("g")
    other = await connect_peer(gateway, bystander)
    try:
        resp = await admin(gateway, "PUT", f"/websocket/users/{user}/groups/{group}")
        assert resp.status_code == 200 and resp.json()["changed"] is True
        await quiet(other)
        peer = await connect_peer(gateway, user, groups=[group],
                                  token=make_token(gateway.secret, user))
        assert f"group:{group}" in peer.rooms  # and it is applied at the next connect
        await peer.close()
    finally:
        await other.close()
