"""Room presence across two real gateways on one redis-server: who is in a room, with
join and leave, answers the same in the client protocol and the admin API."""

from __future__ import annotations

import pytest

from tests.cluster.support import Cluster, api_client, close_all, eventually, join, uid
from tests.helpers.ws import Peer

pytestmark = pytest.mark.redis


async def members(peer: Peer, room: str) -> set[tuple[str, str]]:
    reply = await peer.request({"id": uid("m"), "type": "system",
                                "data": {"action": "members", "room": room}})
    assert reply["data"]["status"] == "ok", reply
    return {(m["connection_id"], m["user_id"]) for m in reply["data"]["members"]}


async def test_members_and_admin_listing_agree_across_instances(
    presence_cluster: Cluster,
) -> None:
    a_gw, b_gw = presence_cluster.gateways
    group = uid("g")
    room = f"group:{group}"
    alice = await join(a_gw, uid("alice"), [group])
    bob = await join(b_gw, uid("bob"), [group])
    apis = [api_client(gw) for gw in presence_cluster.gateways]
    carol = None
    try:
        everyone = {(alice.conn_id, alice.welcome["data"]["user_id"]),
                    (bob.conn_id, bob.welcome["data"]["user_id"])}

        async def agreed() -> bool | None:
            seen = [await members(alice, room), await members(bob, room)]
            for api in apis:
                r = await api.get("/websocket/connections", params={"room_id": room})
                seen.append({(c["id"], c["user_id"]) for c in r.json()["connections"]})
            return True if all(s == everyone for s in seen) else None

        await eventually(agreed, "both instances and both APIs list alice and bob")

        # A join is known at once by the instance holding it (no wait for Redis)...
        carol = await join(a_gw, uid("carol"), [group])
        carol_id = carol.welcome["data"]["user_id"]
        assert (carol.conn_id, carol_id) in await members(alice, room)
        # ...announced to the others with who it is...
        update = await bob.expect("room_update")
        assert update["data"]["action"] == "member_joined"
        assert (update["data"]["connection_id"], update["data"]["user_id"]) == (
            carol.conn_id, carol_id)
        everyone.add((carol.conn_id, carol_id))
        await eventually(agreed, "carol listed everywhere")

        # ...and a leave likewise.
        await carol.close()
        left = await bob.expect("room_update")
        assert left["data"]["action"] == "member_left" and left["data"]["user_id"] == carol_id
        assert (carol.conn_id, carol_id) not in await members(alice, room)
        everyone.discard((carol.conn_id, carol_id))
        await eventually(agreed, "carol gone everywhere")
    finally:
        for api in apis:
            await api.aclose()
        await close_all(alice, bob, *([carol] if carol else []))
