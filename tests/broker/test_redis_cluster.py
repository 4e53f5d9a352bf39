"""Cluster mode end to end: gateways on a real Redis Cluster (three masters, a replica each).

Rooms whose slots are on different masters, users, broadcasts, listings, presence and
history all work across instances; room channels are sharded channels in the slot of the
room's history keys.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import httpx
import pytest
from redis.crc import key_slot
from websockets.exceptions import InvalidStatus

from roomcast.broker import redis_wire as wire
from roomcast.broker.slots import CONTROL_TAG
from roomcast.history.redis import keys
from tests.cluster.support import eventually
from tests.conftest import GatewayFactory
from tests.helpers.gateway import GatewayProcess
from tests.helpers.redis_cluster import RedisCluster, redis_cli_binary
from tests.helpers.redis_server import RedisServer, redis_server_binary
from tests.helpers.ws import Peer, connect_peer

pytestmark = pytest.mark.redis

API_KEY = "cluster-mode-key-0123456789abcdef"
SECRET = "cluster-mode-secret-0123456789abcdefgh"


def cluster_env(nodes: RedisCluster, **extra: str) -> dict[str, str]:
    return {"REDIS_URL": nodes.url, "ROOMCAST_BROKER_MODE": "cluster",
            "ROOMCAST_API_KEY": API_KEY, "JWT_SECRET": SECRET, **extra}


def spread_groups(nodes: RedisCluster, n: int) -> list[str]:
    """Group ids whose rooms live on ``n`` different masters."""
    found: dict[int, str] = {}
    for i in range(1000):
        group = f"g{i}"
        master = nodes.master_of(keys(f"group:{group}")[0]).port
        found.setdefault(master, group)
        if len(found) == n:
            return list(found.values())
    raise AssertionError("rooms do not spread over the masters")


def api(gw: GatewayProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=gw.base_url, headers={"X-API-Key": API_KEY},
                             timeout=30.0)


def test_a_room_channel_shares_the_slot_of_the_room_history() -> None:
    # (A room id starting with "}" makes no hash tag: its channel is published apart.)
    for room in ("group:blue", "user:42", "a{b}c", "{x}"):
        channel = wire.shard_channel(wire.room_channel(room))
        assert key_slot(channel.encode()) == key_slot(keys(room)[0].encode())
        assert wire.unshard_channel(channel) == wire.room_channel(room)
    for channel in wire.CHANNELS:
        assert wire.unshard_channel(wire.shard_channel(channel)) == channel


async def test_rooms_users_and_broadcasts_cross_instances_on_a_cluster(
    redis_cluster_nodes_module: RedisCluster, gateway_factory: GatewayFactory
) -> None:
    nodes = redis_cluster_nodes_module
    a = gateway_factory(env=cluster_env(nodes))
    b = gateway_factory(env=cluster_env(nodes))
    groups = spread_groups(nodes, 3)
    alice = await connect_peer(a, "alice", groups=groups)
    bob = await connect_peer(b, "bob", groups=groups)
    try:
        # A room on each master, both ways.
        for n, group in enumerate(groups):
            sender, receiver = (alice, bob) if n % 2 == 0 else (bob, alice)
            reply = await sender.request({"type": "message", "id": f"m{n}",
                                          "room": f"group:{group}", "data": {"n": n}})
            assert reply["data"]["action"] == "ack", reply
            got = await receiver.expect("message")
            assert (got["room"], got["data"]) == (f"group:{group}", {"n": n})
            assert got["offset"] >= 1 and got["epoch"]  # stored in the room's stream
        async with api(a) as http:
            # To a user connected elsewhere, and to everyone.
            r = await http.post("/websocket/users/bob/message",
                                json={"type": "notification", "data": {"to": "bob"}})
            assert r.status_code == 200, r.text
            got = await bob.expect(lambda m: (m.get("data") or {}).get("to") == "bob")
            assert got["type"] == "notification"
            r = await http.post("/websocket/broadcast",
                                json={"type": "notification", "data": {"to": "all"}})
            assert r.status_code == 200, r.text
            for peer in (alice, bob):
                await peer.expect(lambda m: m.get("data") == {"to": "all"})
            # Listings come from the registry, all of it in one slot.
            r = await http.get("/websocket/connections")
            assert r.status_code == 200, r.text
            users = {c["user_id"] for c in r.json()["connections"]}
            assert {"alice", "bob"} <= users
            r = await http.get(f"/websocket/rooms/group:{groups[0]}")
            assert r.status_code == 200, r.text
            assert r.json()["room"]["member_count"] == 2
            r = await http.get(f"/websocket/rooms/group:{groups[1]}/history")
            assert r.status_code == 200, r.text
        async with httpx.AsyncClient() as plain:
            status = (await plain.get(f"{b.base_url}/websocket/status")).json()
        for group in groups:
            assert wire.shard_channel(wire.room_channel(f"group:{group}")) \
                in status["redis_channels"]
        assert status["status"] == "healthy", status
    finally:
        await alice.close()
        await bob.close()


async def test_the_shared_slots_follow_their_failover(
    redis_cluster_nodes: RedisCluster, gateway_factory: GatewayFactory
) -> None:
    """The master of the registry/presence/membership slot, and of a room, is killed:
    once its replica took over, the gateways list, deliver, accept and broadcast again,
    without a restart; and what an instance missed while it resubscribed reaches its
    clients without waiting for a later publication."""
    nodes = redis_cluster_nodes
    a = gateway_factory(env=cluster_env(nodes))
    b = gateway_factory(env=cluster_env(nodes))
    master = nodes.master_of(CONTROL_TAG)
    group = next(g for g in (f"shared{i}" for i in range(1000))
                 if nodes.master_of(keys(f"group:{g}")[0]) is master)
    room = f"group:{group}"
    alice = await connect_peer(a, "alice", groups=[group])
    bob = await connect_peer(b, "bob", groups=[group])
    # One master only: with two of three gone no replica can win an election.
    nodes.kill(master)
    nodes.wait_ok()
    carol: Peer | None = None
    try:
        async with api(a) as http:
            async def listed() -> bool | None:
                r = await http.get("/websocket/connections")
                users = {c["user_id"] for c in r.json().get("connections", [])} \
                    if r.status_code == 200 else set()
                return True if {"alice", "bob"} <= users else None

            await eventually(listed, "both connections listed after the failover", 60.0)

            async def sent() -> bool | None:
                r = await http.post(f"/websocket/rooms/{room}/message",
                                    json={"type": "notification", "data": {"n": "after"}})
                return True if r.status_code == 200 else None

            # Possibly while b is still resubscribing: bob gets it all the same, and no
            # publication follows to show b the gap.
            await eventually(sent, "a room message accepted after the failover", 60.0)
            got = await bob.expect(lambda m: m.get("data") == {"n": "after"}, timeout=60.0)
            assert got["room"] == room

            async def broadcast() -> bool | None:
                r = await http.post("/websocket/broadcast",
                                    json={"type": "notification", "data": {"n": "all"}})
                return True if r.status_code == 200 else None

            await eventually(broadcast, "a broadcast accepted after the failover", 60.0)

        async def joined() -> Peer | None:
            try:
                return await connect_peer(b, "carol", groups=[group])  # memberships read
            except InvalidStatus:
                return None

        carol = await eventually(joined, "a connection accepted after the failover", 60.0)
    finally:
        for left in (alice, bob, carol):
            if left is not None:
                await left.close()



def test_a_node_whose_port_was_taken_meanwhile_starts_on_fresh_ports(tmp_path: Path) -> None:
    # Ports are picked when the cluster is made and bound when it starts: another test
    # process once took a bus port in between, and the whole CI run failed.
    if redis_server_binary() is None or redis_cli_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("no redis-server or redis-cli binary on PATH")
        pytest.skip("no redis-server or redis-cli binary on PATH")

    def bus_port(node: RedisServer) -> int:
        return int(node.extra_args[node.extra_args.index("--cluster-port") + 1])

    cluster = RedisCluster(tmp_path)
    taken = bus_port(cluster.nodes[0])
    try:
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", taken))
            squatter.listen()
            cluster.start()
        assert bus_port(cluster.nodes[0]) != taken
        assert len(cluster.live()) == 6
    finally:
        cluster.stop()


def test_a_redis_on_a_port_another_redis_holds_is_not_taken_for_started(
    redis_server: RedisServer, tmp_path: Path,
) -> None:
    # Any answer to PING used to count: with the port held by another test's server, a
    # node "started" while its own process failed to bind, and a cluster listing six
    # addresses was made of five nodes.
    second = RedisServer(tmp_path / "second")
    second.port = redis_server.port
    with pytest.raises(RuntimeError, match="did not start"):
        second.start()
    assert not second.running
