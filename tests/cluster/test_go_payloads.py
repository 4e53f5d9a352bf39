"""Payloads a Go gateway instance publishes, injected with a raw Redis client.

docs/protocol.md: ``{"server_id", "message", "timestamp"}`` on ``websocket:rooms`` (by
``room``), ``websocket:users`` (by ``data.user_id``), ``websocket:messages``
(everyone, or one connection with ``to``) and ``websocket:system`` (everyone).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from tests.cluster.support import (
    MESSAGES,
    ROOMS,
    SYSTEM,
    USERS,
    Cluster,
    assert_quiet,
    barrier,
    close_all,
    eventually,
    go_message,
    go_payload,
    join,
    uid,
)
from tests.helpers.gateway import GatewayProcess
from tests.helpers.ws import Peer

pytestmark = pytest.mark.redis


@dataclass
class Scene:
    """Five connections over three instances, named by who they are."""

    group: str
    user: str
    peers: dict[str, Peer]

    @property
    def room(self) -> str:
        return f"group:{self.group}"


@pytest.fixture
async def scene(cluster: Cluster, raw: aioredis.Redis) -> AsyncIterator[Scene]:
    a, b, c = cluster.gateways
    group, user = uid("g"), uid("u")
    peers = {
        "member_a": await join(a, uid("m"), [group]),
        "member_b": await join(b, uid("m"), [group]),
        "user_b": await join(b, user),
        "user_c": await join(c, user),
        "other_c": await join(c, uid("x"), [uid("other")]),
    }
    await barrier(raw, *peers.values())  # past every room_update of the joins
    yield Scene(group, user, peers)
    await close_all(*peers.values())


def _case(scene: Scene, kind: str) -> tuple[str, dict[str, Any], set[str], Any]:
    """(channel, Go envelope, who must receive it, payload timestamp) for a routing case."""
    extra = {"priority": "high", "metadata": {"source": "go-falcon", "seq": 7}}
    everyone = set(scene.peers)
    if kind == "room":
        return (ROOMS, go_message("message", room=scene.room, **{"from": "go-conn"}, **extra),
                {"member_a", "member_b"}, "2024-05-01T12:00:00.123456789Z")
    if kind == "user":
        msg = go_message("notification", data={"user_id": scene.user, "text": uid("t")},
                         timestamp=1714564800123, **extra)
        return USERS, msg, {"user_b", "user_c"}, 1714564800123
    if kind == "broadcast":
        return MESSAGES, go_message("system_notification", **extra), everyone, 1714564800123
    if kind == "direct":
        msg = go_message("message", to=scene.peers["user_c"].conn_id, **extra)
        return MESSAGES, msg, {"user_c"}, "2024-05-01T12:00:00.1Z"
    assert kind == "system"
    return (SYSTEM, go_message("backend_status", **extra), everyone,
            "2024-05-01T12:00:00.999999999-07:00")


@pytest.mark.parametrize("kind", ["room", "user", "broadcast", "direct", "system"])
async def test_go_payload_reaches_exactly_the_right_connections(
    scene: Scene, raw: aioredis.Redis, kind: str
) -> None:
    channel, message, receivers, stamp = _case(scene, kind)
    await raw.publish(channel, go_payload(message, timestamp=stamp, go_version="1.22",
                                          hops=[1, 2]))
    names = list(scene.peers)
    pending = dict(zip(names, await barrier(raw, *scene.peers.values()), strict=True))
    for name, msgs in pending.items():
        # The envelope arrives as the Go instance wrote it, extra fields and all.
        assert msgs == ([message] if name in receivers else []), (name, msgs)


@pytest.mark.parametrize("encoding", ["go", "reordered"])
async def test_a_payload_with_an_instances_own_server_id_is_ignored_by_it(
    cluster: Cluster, raw: aioredis.Redis, encoding: str
) -> None:
    group = uid("g")
    room = f"group:{group}"
    members = [await join(gw, uid("m"), [group]) for gw in cluster.gateways]
    try:
        await barrier(raw, *members)
        for i, server_id in enumerate(cluster.server_ids):
            message = go_message("message", room=room)
            if encoding == "go":
                data = go_payload(message, server_id=server_id)
            else:
                # Another field order and spacing: recognised by the parsed server_id.
                data = json.dumps({"timestamp": 1714564800123, "message": message,
                                   "server_id": server_id}).encode()
            await raw.publish(ROOMS, data)
            pending = await barrier(raw, *members)
            for j, msgs in enumerate(pending):
                assert msgs == ([] if i == j else [message]), (i, j, msgs)
    finally:
        await close_all(*members)


def _malformed(room: str, conn_id: str) -> list[tuple[str, bytes]]:
    ok = go_message("message", room=room)

    def payload(**fields: Any) -> bytes:
        return orjson.dumps({"server_id": "go-instance", "message": ok,
                             "timestamp": "2024-05-01T12:00:00Z", **fields})

    return [
        (ROOMS, b"not json at all"),
        (ROOMS, b"\xff\xfe\x00 not utf-8"),
        (ROOMS, b"[1, 2, 3]"),
        (ROOMS, b'"just a string"'),
        (ROOMS, b"[" * 5000 + b"]" * 5000),
        (ROOMS, orjson.dumps({"message": ok, "timestamp": "2024-05-01T12:00:00Z"})),
        (ROOMS, payload(server_id=42)),
        (ROOMS, payload(message="hello")),
        (ROOMS, payload(message=None)),
        (ROOMS, payload(message={"room": room, "data": {}})),
        (ROOMS, payload(message={"type": 5, "room": room})),
        (ROOMS, payload(message={"type": "message", "data": {}})),
        (ROOMS, payload(message={"type": "message", "room": ["list"]})),
        (USERS, payload(message={"type": "notification", "data": "user"})),
        (USERS, payload(message={"type": "notification", "data": {"text": "no user"}})),
        (MESSAGES, payload(message={"type": "message", "to": 123})),
        (MESSAGES, payload(message={"type": "message", "to": ""})),
        (SYSTEM, payload(message=[conn_id])),
        ("roomcast:control", payload(message={"kind": "self_destruct"})),
        ("roomcast:control", payload(message={"kind": "membership_changed", "user_id": 1})),
        ("roomcast:control", b"{}"),
    ]


async def test_malformed_payloads_are_dropped_and_delivery_goes_on(
    cluster: Cluster, apis: list[httpx.AsyncClient], raw: aioredis.Redis
) -> None:
    group = uid("g")
    room = f"group:{group}"
    members = [await join(gw, uid("m"), [group]) for gw in cluster.gateways]
    bad = _malformed(room, members[0].conn_id)
    try:
        await barrier(raw, *members)
        for channel, data in bad:
            await raw.publish(channel, data)
        valid = go_message("message", room=room)
        await raw.publish(ROOMS, go_payload(valid))
        pending = await barrier(raw, *members)
        assert pending == [[valid]] * len(members), pending
        for api in apis:
            r = await api.get("/websocket/status")
            assert r.status_code == 200 and r.json()["status"] == "healthy", r.text
        for gw in cluster.gateways:

            async def logged(gw: GatewayProcess = gw) -> bool | None:
                # Each drop is logged (reason only, never the payload).
                return True if gw.log().count('"broker_payload_dropped"') == len(bad) else None

            await eventually(logged, "every malformed payload logged as dropped")
            assert "not json at all" not in gw.log()
        await assert_quiet(raw, *members)
    finally:
        await close_all(*members)
