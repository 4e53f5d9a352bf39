"""Bad input gets a clear error; the connection stays open and nobody else notices."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from tests.conftest import GatewayFactory
from tests.core.support import next_is_marker, ping, quiet, send_marker, unique
from tests.helpers.gateway import GatewayProcess
from tests.helpers.ws import TIMEOUT, Peer, connect_peer

LIMIT = 65536  # default ROOMCAST_MAX_MESSAGE_SIZE

BAD_TEXT: list[tuple[str, str, str, str | None]] = [
    # (case, frame, expected code, expected reply id)
    ("invalid JSON", "{not json", "invalid_json", None),
    ("truncated JSON", '{"id": "t1", "type": "presence"', "invalid_json", "t1"),
    ("array", '[{"id": "a1", "type": "presence"}]', "not_an_object", None),
    ("number", "42", "not_an_object", None),
    ("string", '"hello"', "not_an_object", None),
    ("unknown type", '{"id": "u1", "type": "teleport"}', "unknown_type", "u1"),
    ("server-only type", '{"id": "s1", "type": "system_notification", "data": {}}',
     "forbidden", "s1"),
    ("type not a string", '{"id": "w1", "type": 7}', "invalid_field", "w1"),
    ("id not a string", '{"id": 7, "type": "presence"}', "invalid_field", None),
    ("room not a string", '{"id": "w2", "type": "message", "room": 1, "data": {}}',
     "invalid_field", "w2"),
    ("to not a string", '{"id": "w3", "type": "message", "to": [1], "data": {}}',
     "invalid_field", "w3"),
    ("timestamp a float", '{"id": "w4", "type": "presence", "timestamp": 1.5}',
     "invalid_field", "w4"),
    ("data a list", '{"id": "d1", "type": "message", "room": "r", "data": [1, 2]}',
     "invalid_field", "d1"),
    ("data a string", '{"id": "d2", "type": "presence", "data": "online"}', "invalid_field", "d2"),
    ("message without room or to", '{"id": "m1", "type": "message", "data": {}}',
     "invalid_field", "m1"),
    ("message with room and to", '{"id": "m2", "type": "message", "room": "r", "to": "c"}',
     "invalid_field", "m2"),
    ("system without action", '{"id": "y1", "type": "system", "data": {}}', "invalid_field", "y1"),
    ("system action a list", '{"id": "y2", "type": "system", "data": {"action": ["ping"]}}',
     "invalid_field", "y2"),
    ("join without room", '{"id": "y3", "type": "system", "data": {"action": "join"}}',
     "invalid_field", "y3"),
    ("deeply nested", "[" * 5000 + "]" * 5000, "invalid_json", None),
]


@pytest.fixture
async def room_pair(gateway: GatewayProcess) -> AsyncIterator[tuple[Peer, Peer, str]]:
    """A sender and a bystander sharing a group room."""
    group = unique("g")
    sender = await connect_peer(gateway, unique("sender"), groups=[group])
    bystander = await connect_peer(gateway, unique("bystander"), groups=[group])
    await sender.expect("room_update")
    yield sender, bystander, f"group:{group}"
    await sender.close()
    await bystander.close()


async def test_each_bad_frame_gets_its_error_and_the_connection_stays(
    room_pair: tuple[Peer, Peer, str],
) -> None:
    sender, bystander, room = room_pair
    for case, frame, code, reply_id in BAD_TEXT:
        await sender.send(frame)
        reply = await sender.recv()
        assert reply["type"] == "error", case
        assert reply["data"]["code"] == code, (case, reply)
        assert reply["data"]["message"] and reply["data"]["temporary"] is False
        if reply_id is not None:
            assert reply["id"] == reply_id, case
    await quiet(sender)
    # The bystander noticed nothing: the next thing it sees is the sender's marker.
    tag = await send_marker(sender, room)
    await next_is_marker(bystander, tag)


async def test_binary_frame(room_pair: tuple[Peer, Peer, str]) -> None:
    sender, bystander, room = room_pair
    await sender.send(json.dumps({"id": "bin", "type": "presence"}).encode())
    reply = await sender.recv()
    assert reply["type"] == "error" and reply["data"]["code"] == "binary_not_supported"
    tag = await send_marker(sender, room)
    await next_is_marker(bystander, tag)


async def test_frame_over_the_limit_is_too_large_and_the_connection_stays(
    room_pair: tuple[Peer, Peer, str],
) -> None:
    sender, bystander, room = room_pair
    big = json.dumps({"id": "big", "type": "message", "room": room,
                      "data": {"blob": "x" * LIMIT}})
    assert LIMIT < len(big) < 2 * LIMIT
    await sender.send(big)
    reply = await sender.recv()
    assert reply["type"] == "error" and reply["data"]["code"] == "too_large"
    tag = await send_marker(sender, room)
    await next_is_marker(bystander, tag)  # the big message was not delivered


async def test_frame_over_twice_the_limit_closes_with_1009(
    room_pair: tuple[Peer, Peer, str], gateway: GatewayProcess,
) -> None:
    sender, bystander, _ = room_pair
    await sender.send("x" * (2 * LIMIT + 1))
    async with asyncio.timeout(TIMEOUT):
        await sender.ws.wait_closed()
    assert sender.ws.close_code == 1009
    left = await bystander.expect("room_update")
    assert left["data"]["action"] == "member_left"
    await ping(bystander)
    other = await connect_peer(gateway, unique("after-1009"))
    await ping(other)
    await other.close()


async def test_invalid_utf8_text_frame_fails_only_that_connection(
    room_pair: tuple[Peer, Peer, str],
) -> None:
    sender, bystander, _ = room_pair
    await sender.ws.send(b'{"type": "presence", "data": {"s": "\xff"}}', text=True)
    async with asyncio.timeout(TIMEOUT):
        await sender.ws.wait_closed()
    # RFC 6455 §8.1: invalid UTF-8 in a text frame fails the connection (1007).
    assert sender.ws.close_code == 1007
    await bystander.expect(lambda m: m["type"] == "room_update"
                           and m["data"]["action"] == "member_left")
    await ping(bystander)


async def test_a_burst_over_the_rate_is_paused_and_every_id_answered_once(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory(env={"ROOMCAST_CLIENT_BURST": "5", "ROOMCAST_CLIENT_RATE": "20"})
    eager = await connect_peer(gw, unique("eager"))
    calm = await connect_peer(gw, unique("calm"))
    try:
        ids = [f"f{i}" for i in range(40)]
        for mid in ids:
            await eager.send({"id": mid, "type": "heartbeat"})
        outcomes: Counter[str] = Counter()
        seen: set[str] = set()
        while len(seen) < len(ids):
            msg = await eager.recv()
            assert msg["id"] not in seen, f"two replies to {msg['id']}"
            seen.add(msg["id"])
            outcomes[msg["data"].get("code", msg["type"])] += 1
        # Over the rate the connection is read more slowly, not refused (tests/abuse has
        # the flood that is closed).
        assert outcomes == {"heartbeat": len(ids)}
        await ping(calm)  # another connection is unaffected
    finally:
        await eager.close()
        await calm.close()
