"""Admin listings, member counts and status totals cover every instance.

Registry writes lag behind connects and closes, so the first read of each fact is
polled with a bounded deadline; what is asserted after it is exact.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.cluster.support import (
    MESSAGES,
    ROOMS,
    SYSTEM,
    USERS,
    Cluster,
    close_all,
    eventually,
    join,
    registered,
    uid,
)

pytestmark = pytest.mark.redis


async def get(api: httpx.AsyncClient, url: str, **params: Any) -> dict[str, Any]:
    r = await api.get(url, params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def ids(listing: dict[str, Any], key: str = "connections") -> list[str]:
    return sorted(item["id"] for item in listing[key])


async def test_listings_show_the_connections_and_rooms_of_every_instance(
    cluster: Cluster, apis: list[httpx.AsyncClient]
) -> None:
    a, b, c = cluster.gateways
    group = uid("g")
    room = f"group:{group}"
    users = [uid("u"), uid("v"), uid("w")]
    ada = await join(a, users[0], [group], character_id=4201, name="Ada")
    bob = await join(b, users[1], [group], character_id=4202, name="Bob")
    cid = await join(c, users[2], character_id=4203, name="Cid")
    peers = [ada, bob, cid]
    try:
        for i, peer in enumerate(peers):
            await registered(apis[(i + 1) % 3], peer.conn_id)
        await registered(apis[2], ada.conn_id, room)
        await registered(apis[2], bob.conn_id, room)

        for i, api in enumerate(apis):
            # One connection, looked up through an instance that does not hold it.
            other = peers[(i + 1) % 3]
            conn = (await get(api, f"/websocket/connections/{other.conn_id}"))["connection"]
            assert conn["server_id"] == cluster.server_ids[(i + 1) % 3]
            assert conn["user_id"] == users[(i + 1) % 3]
            assert conn["character_name"] == ("Ada", "Bob", "Cid")[(i + 1) % 3]

            everyone = await get(api, "/websocket/connections")
            assert {p.conn_id for p in peers} <= set(ids(everyone))
            assert everyone["total"] == len(everyone["connections"])
            by_user = await get(api, "/websocket/connections", user_id=users[1])
            assert ids(by_user) == [bob.conn_id] and by_user["total"] == 1
            by_character = await get(api, "/websocket/connections", character_id=4203)
            assert ids(by_character) == [cid.conn_id]
            by_room = await get(api, "/websocket/connections", room_id=room)
            assert ids(by_room) == sorted([ada.conn_id, bob.conn_id])
            both = await get(api, "/websocket/connections", room_id=room, character_id=4202)
            assert ids(both) == [bob.conn_id]

            groups = await get(api, "/websocket/rooms", type="group", member_id=users[0])
            assert groups["rooms"] == [
                {"id": room, "type": "group", "name": f"Group: {group}", "member_count": 2}]
            personal = await get(api, "/websocket/rooms", type="personal",
                                 member_id=cid.conn_id)
            assert ids(personal, "rooms") == [f"user:{users[2]}"]
            assert personal["rooms"][0]["member_count"] == 1
            every_room = await get(api, "/websocket/rooms")
            assert {room, *(f"user:{u}" for u in users)} <= set(ids(every_room, "rooms"))
            one = (await get(api, f"/websocket/rooms/{room}"))["room"]
            assert one["member_count"] == 2

        # A member leaving on one instance is gone from the others' view.
        await bob.close()

        async def bob_gone() -> dict[str, Any] | None:
            one = (await get(apis[2], f"/websocket/rooms/{room}"))["room"]
            return one if one["member_count"] == 1 else None

        await eventually(bob_gone, "the room's member_count to drop to 1")
        r = await apis[0].get(f"/websocket/connections/{bob.conn_id}")
        assert r.status_code == 404, r.text
        by_room = await get(apis[1], "/websocket/connections", room_id=room)
        assert ids(by_room) == [ada.conn_id]
    finally:
        await close_all(*peers)


async def test_status_totals_count_every_instance(
    own_cluster: Cluster, own_apis: list[httpx.AsyncClient]
) -> None:
    cluster, apis = own_cluster, own_apis
    peers = [await join(gw, uid("u")) for gw in cluster.gateways]
    extra = await join(cluster.gateways[1], uid("u"))
    try:
        for i, api in enumerate(apis):

            async def totals(api: httpx.AsyncClient = api) -> dict[str, Any] | None:
                body = await get(api, "/websocket/status")
                # Registry writes reach Redis a moment after the connects.
                counts = body.get("cluster") or {}
                return body if (counts.get("connections"), counts.get("rooms")) == (4, 4) else None

            body = await eventually(totals, "status to count four connections and personal rooms")
            assert body["status"] == "healthy" and body["server_id"] == cluster.server_ids[i]
            # This instance's own, in the Go gateway's stats.
            assert body["stats"]["active_connections"] == (2 if i == 1 else 1)
            assert body["stats"]["total_rooms"] == (2 if i == 1 else 1)
            assert {MESSAGES, ROOMS, USERS, SYSTEM} <= set(body["redis_channels"]), body
    finally:
        await close_all(*peers, extra)
