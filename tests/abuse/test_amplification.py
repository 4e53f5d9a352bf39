"""Small requests that made the gateway send a lot, or cut everyone, no longer do.

- Join/leave spam within the sender's own rate made every member of a 60-member room
  receive hundreds of ``room_update`` a second: now each room has its own event budget,
  beyond which its events are coalesced, whatever its size.
- ``members`` on a big room answered every connection (207 KiB for 2,000): now capped,
  with the real count.
- One publication larger than the write-queue limit cut every client of every instance
  with 3008: now it is dropped (and logged) by the instances that cannot carry it, and a
  configuration whose message limit reaches the queue limit is refused.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.abuse.support import API_KEY, DEADLINE, api_client, eventually, log_events, ping, uid
from tests.conftest import GatewayFactory
from tests.helpers.gateway import GatewayProcess
from tests.helpers.redis_server import RedisServer
from tests.helpers.ws import Message, connect_peer

SPAM = 100


async def test_join_leave_spam_is_coalesced_in_a_small_room(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory(env={"ROOMCAST_ROOM_EVENT_RATE": "1", "ROOMCAST_CLIENT_RATE": "1000",
                              "ROOMCAST_CLIENT_BURST": "1000"})
    group = uid("g")
    room = f"group:{group}"
    watchers = [await connect_peer(gw, uid("watcher"), groups=[group]) for _ in range(10)]
    spammer = await connect_peer(gw, uid("spammer"), groups=[group])
    try:
        for n in range(SPAM):
            for action in ("leave", "join"):
                reply = await spammer.request({"type": "system", "id": f"{action}{n}",
                                               "data": {"action": action, "room": room}})
                assert reply["type"] != "error", reply
        for watcher in watchers:
            # The coalesced update follows the spam; every event before it is counted.
            seen: list[Message] = []
            while True:
                msg = await watcher.recv()
                if msg.get("type") == "room_update" and msg["data"]["action"] == "members":
                    break
                seen.append(msg)
            assert msg["data"]["member_count"] == 11
            seen.extend(await ping(watcher))
            per_member = [m for m in seen if m.get("type") == "room_update"
                          and m["data"]["action"] != "members"]
            assert len(per_member) < 2 * SPAM // 4, len(per_member)
    finally:
        for peer in (*watchers, spammer):
            await peer.close()


async def test_members_lists_are_capped_with_the_real_count(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory(env={"ROOMCAST_MAX_MEMBERS_LISTED": "10"})
    group = uid("g")
    crowd = [await connect_peer(gw, uid("m"), groups=[group]) for _ in range(25)]
    try:
        reply = await crowd[0].request({"type": "system", "id": "who",
                                        "data": {"action": "members", "room": f"group:{group}"}})
        assert len(reply["data"]["members"]) == 10
        assert reply["data"]["member_count"] == 25
        assert reply["data"]["truncated"] is True
    finally:
        for peer in crowd:
            await peer.close()


@pytest.fixture(scope="module")
def mixed_pair(redis_server_module: RedisServer) -> Iterator[list[GatewayProcess]]:
    """Two instances on one Redis; the first takes messages the second cannot queue."""
    secret = "amplification-secret-0123456789abcdef"
    common = {"REDIS_URL": redis_server_module.url, "JWT_SECRET": secret,
              "ROOMCAST_API_KEY": API_KEY}
    big = GatewayProcess(env={**common, "ROOMCAST_MAX_MESSAGE_SIZE": str(1 << 20),
                              "ROOMCAST_MAX_QUEUE_BYTES": str(4 << 20)}).start()
    small = GatewayProcess(env={**common, "ROOMCAST_MAX_QUEUE_BYTES": str(256 * 1024)}).start()
    yield [big, small]
    big.close()
    small.close()


@pytest.mark.redis
async def test_a_publication_larger_than_the_queue_is_dropped_not_fatal(
    mixed_pair: list[GatewayProcess],
) -> None:
    big, small = mixed_pair
    there = await connect_peer(big, uid("there"))
    here = [await connect_peer(small, uid("here")) for _ in range(3)]
    api: httpx.AsyncClient = api_client(big)
    try:
        r = await api.post("/websocket/broadcast",
                           json={"type": "notification", "data": {"pad": "x" * 600_000}})
        assert r.status_code == 200, r.text
        huge = await there.expect("notification")
        assert len(huge["data"]["pad"]) == 600_000

        async def dropped() -> bool | None:
            return True if log_events(small, "oversize_publication_dropped") else None

        await eventually(dropped, "the small instance to drop the oversize publication")
        r = await api.post("/websocket/broadcast",
                           json={"type": "notification", "data": {"after": True}})
        assert r.status_code == 200, r.text
        for peer in here:
            # Still connected, and the next publication is the next thing it sees.
            nxt = await peer.expect("notification", timeout=DEADLINE)
            assert nxt["data"] == {"after": True}
            await ping(peer)
    finally:
        await api.aclose()
        for peer in (there, *here):
            await peer.close()


def test_a_message_limit_reaching_the_queue_limit_is_refused(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory(env={"ROOMCAST_MAX_MESSAGE_SIZE": str(1 << 20)}, start=False)
    with pytest.raises(RuntimeError, match="exited at start"):
        gw.start()
    assert "ROOMCAST_MAX_QUEUE_BYTES" in gw.log()

