"""Automatic rooms: welcome, room_joined per room, room_update to the others, cleanup."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

from roomcast.membership.sqlite import SqliteMembershipStore
from roomcast.types import GroupId, UserId
from tests.core.support import bearer, open_peer, quiet, status, unique
from tests.helpers.gateway import GatewayProcess
from tests.helpers.tokens import make_token, raw_token
from tests.helpers.ws import Message, Peer, connect_peer


async def add_to_store(gw: GatewayProcess, user: str, group: str, name: str) -> None:
    """What `roomcast groups add` does: write the gateway's membership file directly."""
    store = SqliteMembershipStore(gw.env["ROOMCAST_DB"])
    await store.open()
    try:
        assert await store.add(UserId(user), GroupId(group), name)
    finally:
        await store.close()


async def groups_cli(gw: GatewayProcess, *args: str, url: str | None = None) -> str:
    """Run `roomcast groups ...` as an operator would, against this gateway."""
    env = {**os.environ, "JWT_SECRET": gw.secret, "ROOMCAST_DB": gw.env["ROOMCAST_DB"]}
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "roomcast", "groups", "--url", url or gw.base_url, *args],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def joined_events(peer: Peer, msgs: list[Message]) -> dict[str, Message]:
    return {m["room"]: m for m in msgs if m["type"] == "room_joined"}


async def read_initial(gw: GatewayProcess, token: str, rooms: int) -> tuple[Peer, list[Message]]:
    """Connect and return every message up to the last room_joined."""
    peer = await open_peer(gw, rooms=0, headers=bearer(token))
    msgs = [peer.welcome]
    while len(peer.rooms) < rooms:
        msgs.append(await peer.recv())
    return peer, msgs


async def test_welcome_then_the_personal_room(gateway: GatewayProcess) -> None:
    user = unique("welcome")
    peer, msgs = await read_initial(gateway, make_token(gateway.secret, user, name="Welcome"), 1)
    try:
        welcome = msgs[0]
        assert welcome["type"] == "system_notification"
        assert welcome["data"] == {"message": "Connected to WebSocket",
                                   "connection_id": peer.conn_id, "user_id": user}
        joined = msgs[1]
        assert [m["type"] for m in msgs] == ["system_notification", "room_joined"]
        assert joined["room"] == f"user:{user}"
        assert joined["data"]["type"] == "personal" and joined["data"]["member_count"] == 1
        assert joined["data"]["room_id"] == joined["data"]["room"] == f"user:{user}"
        await quiet(peer)  # and nothing else arrived in between
    finally:
        await peer.close()


async def test_connection_ids_are_unique(gateway: GatewayProcess) -> None:
    user = unique("ids")
    peers = [await connect_peer(gateway, user) for _ in range(3)]
    assert len({p.conn_id for p in peers}) == 3
    for p in peers:
        await p.close()


async def test_token_groups_claim_of_ids_and_objects(gateway: GatewayProcess) -> None:
    user, g1, g2 = unique("claims"), unique("g"), unique("g")
    token = raw_token(gateway.secret, {"user_id": user, "exp": int(time.time()) + 600,
                                       "groups": [g1, {"id": g2, "name": "Blue team"}]})
    peer, msgs = await read_initial(gateway, token, 3)
    try:
        joined = joined_events(peer, msgs)
        assert set(joined) == {f"user:{user}", f"group:{g1}", f"group:{g2}"}
        assert joined[f"group:{g1}"]["data"]["type"] == "group"
        assert joined[f"group:{g1}"]["data"]["name"] == f"Group: {g1}"
        assert joined[f"group:{g2}"]["data"]["name"] == "Group: Blue team"
    finally:
        await peer.close()


async def test_membership_store_groups_are_joined(gateway: GatewayProcess) -> None:
    user, stored, both, claimed = unique("store"), unique("g"), unique("g"), unique("g")
    await add_to_store(gateway, user, stored, "Stored group")
    await add_to_store(gateway, user, both, "Both")
    token = make_token(gateway.secret, user, groups=[both, claimed])
    peer, msgs = await read_initial(gateway, token, 4)
    try:
        joined = joined_events(peer, msgs)
        assert set(joined) == {f"user:{user}", f"group:{stored}", f"group:{both}",
                               f"group:{claimed}"}
        assert joined[f"group:{stored}"]["data"]["name"] == "Group: Stored group"
        assert len([m for m in msgs if m["type"] == "room_joined"]) == 4
        await quiet(peer)  # `both` was joined only once
    finally:
        await peer.close()


async def test_groups_added_with_the_cli_are_joined(gateway: GatewayProcess) -> None:
    user, group = unique("cli"), unique("g")
    assert (await groups_cli(gateway, "add", user, group, "--name", "Via CLI")).strip() == "changed"
    assert group in await groups_cli(gateway, "list", user)
    peer, msgs = await read_initial(gateway, make_token(gateway.secret, user), 2)
    try:
        joined = joined_events(peer, msgs)
        assert joined[f"group:{group}"]["data"]["name"] == "Group: Via CLI"
    finally:
        await peer.close()


async def test_groups_cli_moves_a_connected_user(gateway: GatewayProcess) -> None:
    user, group = unique("cli-live"), unique("g")
    peer = await connect_peer(gateway, user)
    try:
        await groups_cli(gateway, "add", user, group)
        joined = await peer.expect("room_joined")
        assert joined["room"] == f"group:{group}"
        await groups_cli(gateway, "remove", user, group)
        left = await peer.expect("room_left")
        assert left["room"] == f"group:{group}"
    finally:
        await peer.close()


async def test_other_members_get_room_update(gateway: GatewayProcess) -> None:
    group = unique("g")
    room = f"group:{group}"
    alice = await connect_peer(gateway, unique("alice"), groups=[group])
    bob = await connect_peer(gateway, unique("bob"), groups=[group])
    try:
        joined = await alice.expect("room_update")
        assert joined["room"] == room
        assert joined["data"] == {"action": "member_joined", "room_id": room,
                                  "member_count": 2, "connection_id": bob.conn_id,
                                  "user_id": bob.welcome["data"]["user_id"]}
        await quiet(bob)  # bob got no room_update about himself
        await bob.close()
        left = await alice.expect("room_update")
        assert left["data"] == {"action": "member_left", "room_id": room,
                                "member_count": 1, "connection_id": bob.conn_id,
                                "user_id": bob.welcome["data"]["user_id"]}
    finally:
        await alice.close()


async def test_a_second_connection_joins_the_same_personal_room(gateway: GatewayProcess) -> None:
    user = unique("twice")
    first = await connect_peer(gateway, user)
    second = await connect_peer(gateway, user)
    try:
        update = await first.expect("room_update")
        assert update["room"] == f"user:{user}"
        assert update["data"]["action"] == "member_joined"
        assert update["data"]["connection_id"] == second.conn_id
        assert update["data"]["member_count"] == 2
    finally:
        await first.close()
        await second.close()


async def test_empty_group_rooms_disappear(fresh_gateway: GatewayProcess) -> None:
    gw = fresh_gateway
    user, group = unique("u"), unique("g")
    # Two connections of one user; only the first is in the group (by its token).
    in_group = await connect_peer(gw, user, groups=[group])
    plain = await connect_peer(gw, user)
    await in_group.expect("room_update")  # plain joined user:{user}
    assert (await status(gw))["stats"]["total_rooms"] == 2  # user:{user}, group:{group}

    await in_group.close()
    left = await plain.expect("room_update")  # the server has finished removing in_group
    assert left["data"]["action"] == "member_left"
    after = (await status(gw))["stats"]
    assert after["total_rooms"] == 1  # the personal room stays, the empty group room is gone
    assert after["active_connections"] == 1
    await plain.close()


async def test_leaving_the_last_member_deletes_the_room(fresh_gateway: GatewayProcess) -> None:
    gw = fresh_gateway
    group = unique("g")
    peer = await connect_peer(gw, unique("u"), groups=[group])
    assert (await status(gw))["stats"]["total_rooms"] == 2
    reply = await peer.request({"id": "leave", "type": "system",
                                "data": {"action": "leave", "room": f"group:{group}"}})
    assert reply["data"]["status"] == "ok"
    assert (await status(gw))["stats"]["total_rooms"] == 1
    await peer.close()
