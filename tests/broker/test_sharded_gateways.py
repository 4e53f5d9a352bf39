"""Sharded mode end to end: per-room channels follow local membership."""

from __future__ import annotations

import httpx

from tests.conftest import GatewayFactory
from tests.helpers.redis_server import RedisServer
from tests.helpers.ws import connect_peer

API_KEY = "sharded-test-key-0123456789abcdef"


async def test_room_messages_cross_instances_in_sharded_mode(
    redis_server: RedisServer, gateway_factory: GatewayFactory
) -> None:
    env = {"REDIS_URL": redis_server.url, "ROOMCAST_BROKER_MODE": "sharded",
           "ROOMCAST_API_KEY": API_KEY, "JWT_SECRET": "sharded-secret-0123456789abcdefghijkl"}
    a = gateway_factory(env=env)
    b = gateway_factory(env=env)
    alice = await connect_peer(a, "alice", groups=["blue"])
    bob = await connect_peer(b, "bob", groups=["blue"])
    carol = await connect_peer(b, "carol", groups=["green"])

    reply = await alice.request({"type": "message", "id": "s1", "room": "group:blue",
                                 "data": {"text": "across"}})
    assert reply["data"]["action"] == "ack"
    got = await bob.recv()
    assert got["data"] == {"text": "across"} and got["room"] == "group:blue"

    # Isolation, by order: each publish below is answered after Redis took it, and B reads
    # its subscription in order and queues each delivery before the next, so a message
    # leaked to a non-member would arrive before that connection's next own message.
    async with httpx.AsyncClient(base_url=a.base_url, headers={"X-API-Key": API_KEY}) as api:
        for room, data in (("group:green", {"n": 1}), ("group:blue", {"n": 2})):
            resp = await api.post(f"/websocket/rooms/{room}/message",
                                  json={"type": "notification", "data": data})
            assert resp.status_code == 200, resp.text
    got = await carol.recv()  # not alice's group:blue message
    assert (got["type"], got["room"], got["data"]) == ("notification", "group:green", {"n": 1})
    got = await bob.recv()  # not the group:green notification
    assert (got["type"], got["room"], got["data"]) == ("notification", "group:blue", {"n": 2})

    # The instance subscribes to the room channels of its members.
    async with httpx.AsyncClient() as http:
        status = (await http.get(f"{b.base_url}/websocket/status")).json()
    assert "roomcast:room:group:blue" in status["redis_channels"]
    assert "roomcast:room:group:green" in status["redis_channels"]
    for peer in (alice, bob, carol):
        await peer.close()
