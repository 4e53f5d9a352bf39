"""Join storms: room_update per member in small rooms, coalesced in big ones."""

from __future__ import annotations

from tests.conftest import GatewayFactory
from tests.helpers.ws import Message, connect_peer


async def test_room_updates_are_coalesced_above_the_threshold(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory(env={"ROOMCAST_ROOM_EVENT_THRESHOLD": "3",
                              "ROOMCAST_ROOM_EVENT_INTERVAL": "0.2"})
    observer = await connect_peer(gw, "observer", groups=["storm"])
    small = [await connect_peer(gw, f"early{i}", groups=["storm"]) for i in range(2)]
    # Up to the threshold every join is announced on its own, with the joiner's id.
    for peer, count in zip(small, (2, 3), strict=True):
        event = await observer.expect("room_update")
        assert event["data"] == {"action": "member_joined", "room_id": "group:storm",
                                 "member_count": count, "connection_id": peer.conn_id,
                                 "user_id": peer.welcome["data"]["user_id"]}

    late = [await connect_peer(gw, f"late{i}", groups=["storm"]) for i in range(5)]
    seen: list[Message] = []

    def settled(msg: Message) -> bool:
        if msg.get("type") == "room_update":
            seen.append(msg)
            return bool(msg["data"]["member_count"] == 8)
        return False

    final = await observer.expect(settled)
    assert final["data"]["action"] == "members"
    assert "connection_id" not in final["data"]
    # Above the threshold no join is announced on its own: at most one update per interval.
    assert all(m["data"]["action"] == "members" for m in seen)
    for peer in [observer, *small, *late]:
        await peer.close()
