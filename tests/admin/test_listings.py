"""Connection, room and group listings, their filters, 404s and 422s."""

from __future__ import annotations

import random

import httpx
import pytest

from tests.admin.support import uid
from tests.helpers.gateway import GatewayProcess
from tests.helpers.problems import bare, problem
from tests.helpers.ws import connect_peer


async def test_connections_and_filters(admin_gw: GatewayProcess, api: httpx.AsyncClient) -> None:
    u1, u2, group = uid("lst"), uid("lst"), uid("grp")
    c1, c2 = random.sample(range(10**8, 10**9), 2)
    p1 = await connect_peer(admin_gw, u1, groups=[group], character_id=c1, name="Ada")
    p2 = await connect_peer(admin_gw, u2, character_id=c2)
    try:
        r = await api.get("/websocket/connections", params={"user_id": u1})
        assert r.status_code == 200
        body = r.json()
        assert body["total"] == 1
        conn = body["connections"][0]
        server_id = (await api.get("/websocket/status")).json()["server_id"]
        assert conn == {
            "id": p1.conn_id, "user_id": u1, "character_id": c1, "character_name": "Ada",
            "rooms": sorted([f"user:{u1}", f"group:{group}"]), "created_at": conn["created_at"],
            "server_id": server_id,
        }
        assert conn["created_at"].endswith("Z")

        async def ids(**params: str | int) -> set[str]:
            r = await api.get("/websocket/connections", params=params)
            assert r.status_code == 200, r.text
            listed = r.json()
            assert listed["total"] == len(listed["connections"])
            return {c["id"] for c in listed["connections"]}

        assert await ids(character_id=c2) == {p2.conn_id}
        assert await ids(room_id=f"group:{group}") == {p1.conn_id}
        assert await ids(room_id=f"user:{u2}") == {p2.conn_id}
        assert await ids(user_id=u1, room_id=f"user:{u2}") == set()
        assert await ids(user_id=u2, character_id=c2) == {p2.conn_id}
        assert {p1.conn_id, p2.conn_id} <= await ids()

        r = await api.get(f"/websocket/connections/{p2.conn_id}")
        assert r.status_code == 200
        assert r.json()["connection"]["user_id"] == u2
    finally:
        await p1.close()
        await p2.close()


async def test_rooms_and_filters(admin_gw: GatewayProcess, api: httpx.AsyncClient) -> None:
    u1, u2, group = uid("rms"), uid("rms"), uid("grp")
    p1 = await connect_peer(admin_gw, u1, groups=[group])
    p2 = await connect_peer(admin_gw, u2, groups=[group])
    try:
        r = await api.get(f"/websocket/rooms/group:{group}")
        assert r.status_code == 200
        assert bare(r) == {"room": {"id": f"group:{group}", "type": "group",
                                     "name": f"Group: {group}", "member_count": 2}}
        r = await api.get(f"/websocket/rooms/user:{u1}")
        assert r.json()["room"]["type"] == "personal"
        assert r.json()["room"]["member_count"] == 1

        async def ids(**params: str) -> set[str]:
            r = await api.get("/websocket/rooms", params=params)
            assert r.status_code == 200, r.text
            listed = r.json()
            assert listed["total"] == len(listed["rooms"])
            return {room["id"] for room in listed["rooms"]}

        assert await ids(member_id=u1) == {f"user:{u1}", f"group:{group}"}
        assert await ids(member_id=p2.conn_id) == {f"user:{u2}", f"group:{group}"}
        assert await ids(type="group", member_id=u1) == {f"group:{group}"}
        assert await ids(type="personal", member_id=u1) == {f"user:{u1}"}
        every = await ids()
        assert {f"user:{u1}", f"user:{u2}", f"group:{group}"} <= every
        assert all(r.startswith("group:") for r in await ids(type="group"))
    finally:
        await p1.close()
        await p2.close()


async def test_groups_of_a_user(api: httpx.AsyncClient) -> None:
    user = uid("grps")
    r = await api.get(f"/websocket/users/{user}/groups")
    assert bare(r) == {"user_id": user, "groups": [], "total": 0}
    for gid, name in (("b-team", "Bees"), ("a-team", "Aces")):
        assert (await api.put(f"/websocket/users/{user}/groups/{gid}",
                              json={"name": name})).status_code == 200
    r = await api.get(f"/websocket/users/{user}/groups")
    assert bare(r) == {"user_id": user, "total": 2, "groups": [
        {"id": "a-team", "name": "Aces"}, {"id": "b-team", "name": "Bees"}]}


@pytest.mark.parametrize("path", [
    "/websocket/connections/0d4e8a52-6f1c-4b1e-9a43-000000000000",
    "/websocket/rooms/group:nobody-here",
    "/websocket/rooms/user:nobody-here",
])
async def test_unknown_is_404(api: httpx.AsyncClient, path: str) -> None:
    problem(await api.get(path), 404, "not_found")


@pytest.mark.parametrize(("path", "field"), [
    ("/websocket/connections?character_id=abc", "query.character_id"),
    ("/websocket/connections?character_id=1.5", "query.character_id"),
    ("/websocket/connections?character_id=-1", "query.character_id"),
    ("/websocket/connections?user_id=" + "x" * 129, "query.user_id"),
    ("/websocket/rooms?type=" + "t" * 65, "query.type"),
    ("/websocket/rooms/lobby", "path.room_id"),
    ("/websocket/rooms/group:bad%20id", "path.room_id"),
    ("/websocket/rooms/group:", "path.room_id"),
    ("/websocket/users/bad%20user/groups", "path.user_id"),
    ("/websocket/users/alice%0A/groups", "path.user_id"),  # "$" passes a final newline
    ("/websocket/rooms/group:red%0A", "path.room_id"),
    ("/websocket/users/-leading-dash/groups", "path.user_id"),
    ("/websocket/users/" + "u" * 65 + "/groups", "path.user_id"),
    ("/websocket/connections/" + "c" * 129, "path.connection_id"),
])
async def test_invalid_parameters_are_422(api: httpx.AsyncClient, path: str, field: str) -> None:
    body = problem(await api.get(path), 422)
    assert body["code"] in ("invalid_query", "invalid_path")
    assert body["errors"][0]["location"] == field
    assert field.split(".")[1] in body["detail"]
