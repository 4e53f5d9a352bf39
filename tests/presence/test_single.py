"""Presence on one gateway without Redis (the in-memory store)."""

from __future__ import annotations

from tests.conftest import GatewayFactory
from tests.helpers.ws import connect_peer


async def test_status_changes_and_offline_after_the_grace_period(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory(env={"ROOMCAST_PRESENCE_GRACE": "0.5"})
    alice = await connect_peer(gw, "alice", groups=["crew"])
    bob = await connect_peer(gw, "bob", groups=["crew"])
    try:
        await bob.send({"id": "s", "type": "system",
                        "data": {"action": "subscribe_presence", "userId": "alice"}})
        assert (await bob.expect(lambda m: m.get("id") == "s"))["data"]["status"] == "ok"
        assert (await bob.expect("presence"))["data"]["status"] == "online"
        await alice.send({"id": "p", "type": "presence",
                          "data": {"userId": "alice", "status": "away", "metadata": {"a": 1}}})
        event = await bob.expect("presence")
        assert (event["data"]["userId"], event["data"]["status"]) == ("alice", "away")
        assert event["data"]["metadata"] == {"a": 1}
        await alice.close()
        event = await bob.expect("presence")
        assert (event["data"]["userId"], event["data"]["status"]) == ("alice", "offline")
    finally:
        await bob.close()


async def test_the_react_hook_may_name_its_user_by_user_or_character_id(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory()
    peer = await connect_peer(gw, "carol", character_id=90000042)
    try:
        for name, expected in (("carol", "presence"), ("90000042", "presence"),
                               ("90000043", "error"), ("dave", "error")):
            await peer.send({"id": name, "type": "presence",
                             "data": {"userId": name, "status": "away"}})
            reply = await peer.expect(lambda m, n=name: m.get("id") == n)  # type: ignore[misc]
            assert reply["type"] == expected, reply
    finally:
        await peer.close()
