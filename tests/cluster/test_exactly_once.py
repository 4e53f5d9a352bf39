"""Each connection receives each message exactly once, wherever it was published.

A duplicate would come from a local delivery plus the publisher's own Redis echo,
or from two instances both delivering; a loss from a publication never arriving.
After reading exactly the expected messages, the next one must be a marker sent
through Redis afterwards: nothing extra was queued.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
import redis.asyncio as aioredis

from tests.cluster.support import Cluster, assert_quiet, barrier, close_all, join, uid
from tests.helpers.ws import Message, Peer

pytestmark = pytest.mark.redis

N = 60


async def read_exactly(peer: Peer, n: int) -> list[Message]:
    return [await peer.recv() for _ in range(n)]


async def test_a_client_burst_into_a_room_arrives_once_and_in_order_everywhere(
    cluster: Cluster, raw: aioredis.Redis
) -> None:
    a, b, c = cluster.gateways
    group = uid("g")
    room = f"group:{group}"
    sender_user = uid("s")
    sender = await join(a, sender_user, [group])
    others = [
        await join(a, uid("p"), [group]),
        await join(b, uid("p"), [group]),
        await join(c, uid("q"), [group]),
        await join(c, sender_user, [group]),  # the sender's other connection
    ]
    try:
        await barrier(raw, sender, *others)
        texts = [uid(f"burst{i}") for i in range(N)]
        for i, text in enumerate(texts):  # no waiting for acks: a burst
            await sender.send({"id": f"b{i}", "type": "message", "room": room,
                               "data": {"text": text}})
        for peer in others:
            got = await read_exactly(peer, N)
            assert [m["data"].get("text") for m in got] == texts, peer.conn_id
            assert {m["from"] for m in got} == {sender.conn_id}
        own = await read_exactly(sender, 2 * N)  # its own copies and the acks
        assert [m["data"]["text"] for m in own if m["type"] == "message"] == texts
        assert sorted(m["id"] for m in own if m["type"] == "system") == sorted(
            f"b{i}" for i in range(N))
        await assert_quiet(raw, sender, *others)
    finally:
        await close_all(sender, *others)


async def test_admin_bursts_through_every_instance_arrive_once_per_connection(
    cluster: Cluster, apis: list[httpx.AsyncClient], raw: aioredis.Redis
) -> None:
    a, b, c = cluster.gateways
    group, user = uid("g"), uid("u")
    room = f"group:{group}"
    peers = {
        "user_in_room_a": await join(a, user, [group]),
        "user_b": await join(b, user),
        "room_b": await join(b, uid("w"), [group]),
        "room_c": await join(c, uid("v"), [group]),
    }
    in_room = {"user_in_room_a", "room_b", "room_c"}
    of_user = {"user_in_room_a", "user_b"}
    try:
        await barrier(raw, *peers.values())
        posts = []
        expected: dict[str, set[str]] = {name: set() for name in peers}
        for i in range(N):
            text = uid(f"admin{i}")
            kind = ("room", "user", "broadcast")[i % 3]
            url = {"room": f"/websocket/rooms/{room}/message",
                   "user": f"/websocket/users/{user}/message",
                   "broadcast": "/websocket/broadcast"}[kind]
            reach = {"room": in_room, "user": of_user, "broadcast": set(peers)}[kind]
            for name in reach:
                expected[name].add(text)
            api = apis[(i // 3) % len(apis)]  # each kind through each instance
            posts.append(api.post(url, json={"type": "notification", "data": {"text": text}}))
        for r in await asyncio.gather(*posts):
            assert r.status_code == 200, r.text
        for name, peer in peers.items():
            got = [m["data"]["text"] for m in await read_exactly(peer, len(expected[name]))]
            assert len(set(got)) == len(got), f"{name} got a duplicate"
            assert set(got) == expected[name], name
        await assert_quiet(raw, *peers.values())
    finally:
        await close_all(*peers.values())
