"""Client messages: room isolation, direct messages, system actions, presence, replies."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from tests.core.support import next_is_marker, ping, quiet, send_marker, unique
from tests.helpers.gateway import GatewayProcess
from tests.helpers.ws import Message, Peer, connect_peer

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


async def close_all(*peers: Peer) -> None:
    for peer in peers:
        await peer.close()


def is_error(reply: Message, code: str) -> bool:
    return bool(reply["type"] == "error" and reply["data"]["code"] == code)


async def test_room_message_reaches_members_with_server_fields(gateway: GatewayProcess) -> None:
    group = unique("g")
    room = f"group:{group}"
    alice = await connect_peer(gateway, unique("alice"), groups=[group])
    bob = await connect_peer(gateway, unique("bob"), groups=[group])
    try:
        await alice.expect("room_update")
        ack = await alice.request({"id": "m1", "type": "message", "room": room,
                                   "from": "spoofed", "timestamp": 0, "data": {"text": "hi"}})
        assert ack["type"] == "system" and ack["data"]["status"] == "ok"
        got = await bob.expect("message")
        assert got["room"] == room and got["data"] == {"text": "hi"}
        assert got["from"] == alice.conn_id  # the server sets from, not the client
        assert RFC3339.match(got["timestamp"])
        assert got["id"] == ack["data"]["message_id"]
        event = await bob.request({"id": "e1", "type": "custom_event", "room": room,
                                   "data": {"kind": "typing"}})
        assert event["data"]["status"] == "ok"
        custom = await alice.expect("custom_event")
        assert custom["data"] == {"kind": "typing"} and custom["from"] == bob.conn_id
    finally:
        await close_all(alice, bob)


async def test_room_isolation_both_ways(gateway: GatewayProcess) -> None:
    red, blue = unique("red"), unique("blue")
    alice = await connect_peer(gateway, unique("alice"), groups=[red])
    bob = await connect_peer(gateway, unique("bob"), groups=[blue])
    carol = await connect_peer(gateway, unique("carol"), groups=[blue])
    try:
        await bob.expect("room_update")  # carol joined blue
        # alice cannot post into blue, nor into bob's personal room, nor into a made-up room.
        for i, room in enumerate([f"group:{blue}", f"user:{bob.welcome['data']['user_id']}",
                                  "lobby", f"group:{unique('nobody')}"]):
            for kind in ("message", "custom_event"):
                reply = await alice.request({"id": f"x{i}{kind}", "type": kind, "room": room,
                                             "data": {"secret": "leak"}})
                assert is_error(reply, "forbidden"), reply
        # ... and nothing of it reached blue: the next thing bob sees is carol's marker.
        tag = await send_marker(carol, f"group:{blue}")
        await next_is_marker(bob, tag)
        # The other way: blue's traffic never reaches alice.
        await bob.request({"id": "b1", "type": "message", "room": f"group:{blue}",
                           "data": {"secret": "blue only"}})
        await quiet(alice)  # a stray blue message would have been queued before this pong
    finally:
        await close_all(alice, bob, carol)


async def test_direct_message_to_a_connection_sharing_a_room(gateway: GatewayProcess) -> None:
    group = unique("g")
    alice = await connect_peer(gateway, unique("alice"), groups=[group])
    bob = await connect_peer(gateway, unique("bob"), groups=[group])
    try:
        await alice.expect("room_update")
        ack = await alice.request({"id": "d1", "type": "message", "to": bob.conn_id,
                                   "data": {"psst": 1}})
        assert ack["data"]["status"] == "ok"
        got = await bob.expect("message")
        assert got["to"] == bob.conn_id and got["from"] == alice.conn_id
        assert got["data"] == {"psst": 1}
        await quiet(alice)  # the sender does not get her own direct message
    finally:
        await close_all(alice, bob)


async def test_direct_message_without_a_shared_room_is_forbidden(gateway: GatewayProcess) -> None:
    alice = await connect_peer(gateway, unique("alice"), groups=[unique("g")])
    carol = await connect_peer(gateway, unique("carol"), groups=[unique("g")])
    try:
        unshared = await alice.request({"id": "d2", "type": "message", "to": carol.conn_id,
                                        "data": {}})
        unknown = await alice.request({"id": "d3", "type": "custom_event",
                                       "to": unique("no-such-conn"), "data": {}})
        assert is_error(unshared, "forbidden") and is_error(unknown, "forbidden")
        # Same answer for both: an id cannot be probed.
        assert unshared["data"]["message"] == unknown["data"]["message"]
        await quiet(carol)  # nothing was delivered to carol
    finally:
        await close_all(alice, carol)


async def test_system_ping_presence_heartbeat(gateway: GatewayProcess) -> None:
    user = unique("sys")
    peer = await connect_peer(gateway, user)
    try:
        pong = await ping(peer, "hb-1")
        assert pong["id"] == "hb-1"
        presence = await peer.request({"id": "pr-1", "type": "presence"})
        assert presence["type"] == "presence"
        assert presence["data"]["status"] == "online" and RFC3339.match(
            presence["data"]["timestamp"])
        heartbeat = await peer.request({"id": "hb-2", "type": "heartbeat"})
        assert heartbeat["type"] == "heartbeat"
    finally:
        await peer.close()


async def test_leave_stops_delivery_until_rejoin(gateway: GatewayProcess) -> None:
    group = unique("g")
    room = f"group:{group}"
    alice = await connect_peer(gateway, unique("alice"), groups=[group])
    bob = await connect_peer(gateway, unique("bob"), groups=[group])
    try:
        await alice.expect("room_update")
        left = await alice.request({"id": "l1", "type": "system",
                                    "data": {"action": "leave", "room": room}})
        assert left["data"]["status"] == "ok" and left["data"]["joined"] is False
        assert room not in alice.rooms  # room_left arrived before the ack
        assert (await bob.expect("room_update"))["data"]["action"] == "member_left"

        await bob.request({"id": "b1", "type": "message", "room": room, "data": {"n": 1}})
        await quiet(alice)  # not delivered to alice
        post = await alice.request({"id": "l2", "type": "message", "room": room, "data": {}})
        assert is_error(post, "forbidden")
        await quiet(alice)  # the refused post was not echoed either

        joined = await alice.request({"id": "j1", "type": "system", "room": room,
                                      "data": {"action": "join"}})
        assert joined["data"]["status"] == "ok" and joined["data"]["joined"] is True
        assert room in alice.rooms
        tag = await send_marker(bob, room)
        await next_is_marker(alice, tag)
    finally:
        await close_all(alice, bob)


async def test_join_of_a_room_not_entitled_to_is_forbidden(gateway: GatewayProcess) -> None:
    user = unique("joiner")
    other_group = unique("g")
    owner = await connect_peer(gateway, unique("owner"), groups=[other_group])
    peer = await connect_peer(gateway, user, groups=[unique("mine")])
    try:
        for room in (f"group:{other_group}", f"user:{owner.welcome['data']['user_id']}",
                     "lobby", "group:", "user:"):
            reply = await peer.request({"id": unique("j"), "type": "system",
                                        "data": {"action": "join", "room": room}})
            assert is_error(reply, "forbidden"), (room, reply)
        await quiet(owner)  # no member_joined was announced
    finally:
        await close_all(owner, peer)


async def test_rejoin_own_personal_room(gateway: GatewayProcess) -> None:
    user = unique("personal")
    room = f"user:{user}"
    peer = await connect_peer(gateway, user)
    try:
        await peer.request({"id": "l", "type": "system", "data": {"action": "leave",
                                                                 "room": room}})
        assert peer.rooms == set()
        reply = await peer.request({"id": "j", "type": "system",
                                    "data": {"action": "join", "room": room}})
        assert reply["data"]["status"] == "ok" and peer.rooms == {room}
    finally:
        await peer.close()


async def test_members_of_a_room(gateway: GatewayProcess) -> None:
    group = unique("g")
    alice = await connect_peer(gateway, unique("alice"), groups=[group])
    bob = await connect_peer(gateway, unique("bob"), groups=[group])
    try:
        reply = await alice.request({"id": "mem", "type": "system",
                                     "data": {"action": "members", "room": f"group:{group}"}})
        members = {m["connection_id"] for m in reply["data"]["members"]}
        assert members == {alice.conn_id, bob.conn_id}
        other = await alice.request({"id": "mem2", "type": "system", "data": {
            "action": "members", "room": f"group:{unique('g')}"}})
        assert is_error(other, "forbidden")
    finally:
        await close_all(alice, bob)


async def test_every_message_with_an_id_gets_exactly_one_reply(gateway: GatewayProcess) -> None:
    group = unique("g")
    room = f"group:{group}"
    peer = await connect_peer(gateway, unique("once"), groups=[group])
    frames: list[dict[str, Any]] = [
        {"type": "message", "room": room, "data": {}},
        {"type": "custom_event", "room": room, "data": {}},
        {"type": "message", "room": "group:elsewhere", "data": {}},
        {"type": "message", "to": peer.conn_id, "data": {}},
        {"type": "message", "to": "nobody", "data": {}},
        {"type": "system", "data": {"action": "ping"}},
        {"type": "system", "data": {"action": "members", "room": room}},
        {"type": "system", "data": {"action": "join", "room": "group:elsewhere"}},
        {"type": "system", "data": {"action": "join", "room": room}},  # already in
        {"type": "system", "data": {"action": "leave", "room": "group:never"}},
        {"type": "system", "data": {"action": "dance"}},
        {"type": "presence"},
        {"type": "heartbeat"},
        {"type": "nope"},
        {"type": "room_update", "data": {}},
        {"type": "message", "data": []},
        {"type": "message"},
    ]
    ids = [f"once-{i}" for i in range(len(frames))]
    try:
        for mid, frame in zip(ids, frames, strict=True):
            await peer.send(json.dumps({**frame, "id": mid}))
        await peer.send({"type": "system", "id": "end", "data": {"action": "ping"}})
        replies: Counter[str] = Counter()
        while True:
            msg = await peer.recv()
            if msg["id"] == "end":
                break
            replies[msg["id"]] += 1
        assert {mid: replies[mid] for mid in ids} == dict.fromkeys(ids, 1)
    finally:
        await peer.close()
