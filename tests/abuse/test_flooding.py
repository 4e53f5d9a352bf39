"""A flooding connection is paused, then closed; one user or address cannot take it all.

Ten connections of one user sending heartbeats as fast as they could once pushed another
user's pings to a second, because every over-limit frame was still parsed and answered
(200 connections of invalid JSON left 40 s of backlog). Now a connection over its rate is
not read until it is back under (no answer per frame), closed with 1008 if it stays over;
``members`` costs by the size of its answer; connections per user and per client IP are
capped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.abuse.support import DEADLINE, ping, uid
from tests.conftest import GatewayFactory
from tests.helpers.gateway import GatewayProcess
from tests.helpers.tokens import make_token
from tests.helpers.ws import Peer, connect_peer

FLOOD = 3000


async def flood_until_closed(peer: Peer, frame: str) -> Counter[str]:
    """Send ``frame`` FLOOD times while reading replies; the outcome of every reply.

    Fails unless the gateway closes the connection with 1008 within the deadline.
    """

    async def send_all() -> None:
        with contextlib.suppress(ConnectionClosed):
            for _ in range(FLOOD):
                await peer.ws.send(frame)

    sender = asyncio.create_task(send_all())
    outcomes: Counter[str] = Counter()
    try:
        async with asyncio.timeout(DEADLINE):
            while True:
                try:
                    msg = await peer.recv()
                except ConnectionClosed:
                    break
                outcomes[msg["data"].get("code", msg["type"]) if msg["type"] == "error"
                         else msg["type"]] += 1
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
    assert peer.ws.close_code == 1008, (peer.ws.close_code, outcomes)
    return outcomes


async def answered_until_closed(peer: Peer, requests: list[dict[str, Any]]) -> int:
    """Send ``requests`` one at a time, each after the last reply; how many were answered
    before the gateway closed the connection for flooding (1008: it must)."""
    answered = 0
    with contextlib.suppress(ConnectionClosed):
        for request in requests:
            await peer.request(request)
            answered += 1
    async with asyncio.timeout(DEADLINE):
        await peer.ws.wait_closed()
    assert peer.ws.close_code == 1008, (peer.ws.close_code, answered)
    return answered


@pytest.fixture
def strict(gateway_factory: GatewayFactory) -> GatewayProcess:
    return gateway_factory(env={"ROOMCAST_CLIENT_RATE": "5", "ROOMCAST_CLIENT_BURST": "10",
                                "ROOMCAST_FLOOD_CLOSE": "2"})


@pytest.mark.parametrize("frame", ['{"type": "heartbeat", "id": "h"}', '{"type": '],
                         ids=["heartbeats", "invalid JSON"])
async def test_a_flooding_connection_is_paused_then_closed(
    strict: GatewayProcess, frame: str
) -> None:
    flooders = [await connect_peer(strict, uid("flooder")) for _ in range(3)]
    calm = await connect_peer(strict, uid("calm"))
    try:
        results = await asyncio.gather(*(flood_until_closed(f, frame) for f in flooders))
        for outcomes in results:
            # Paused, not answered frame by frame: no rate_limited answers, and far fewer
            # replies than frames (the burst and what the rate refilled before the close).
            assert "rate_limited" not in outcomes, outcomes
            assert sum(outcomes.values()) < FLOOD // 10, outcomes
        await ping(calm)
    finally:
        for peer in (*flooders, calm):
            await peer.close()


async def test_a_connection_within_its_rate_is_left_alone(strict: GatewayProcess) -> None:
    peer = await connect_peer(strict, uid("steady"))
    try:
        for n in range(10):  # the burst, answered at once, not closed
            reply = await peer.request({"type": "heartbeat", "id": f"h{n}"})
            assert reply["type"] == "heartbeat"
        await ping(peer)
    finally:
        await peer.close()


async def test_members_is_counted_at_its_cost(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(env={"ROOMCAST_CLIENT_RATE": "0.1", "ROOMCAST_CLIENT_BURST": "20",
                              "ROOMCAST_FLOOD_CLOSE": "1"})
    group = uid("g")
    room = f"group:{group}"
    members = [await connect_peer(gw, uid("member"), groups=[group]) for _ in range(40)]
    asker = await connect_peer(gw, uid("asker"), groups=[group])
    cheap = await connect_peer(gw, uid("cheap"), groups=[group])
    try:
        # Fifteen heartbeats fit in the burst of twenty...
        for n in range(15):
            await cheap.request({"type": "heartbeat", "id": f"c{n}"})
        await ping(cheap)
        # ...fifteen listings of a 42-member room do not: each costs three messages.
        reply = await asker.request({"type": "system", "id": "m",
                                     "data": {"action": "members", "room": room}})
        assert len(reply["data"]["members"]) == 42
        listings = [{"type": "system", "id": f"m{n}",
                     "data": {"action": "members", "room": room}} for n in range(14)]
        assert await answered_until_closed(asker, listings) < 14
    finally:
        for peer in (*members, asker, cheap):
            await peer.close()


async def test_large_frames_are_counted_by_size(gateway_factory: GatewayFactory) -> None:
    # One member's burst of 200 frames of 60 KB (12 MB, within the frame allowance) once
    # pushed the room's members on 1-3 MB/s links past their write queues: closed as
    # slow consumers, with what they had not read lost.
    gw = gateway_factory(env={"ROOMCAST_CLIENT_RATE": "0.1", "ROOMCAST_CLIENT_BURST": "20",
                              "ROOMCAST_FLOOD_CLOSE": "1", "ROOMCAST_CLIENT_FRAME_BYTES": "8192"})
    small = await connect_peer(gw, uid("small"))
    large = await connect_peer(gw, uid("large"))
    pad = "x" * 30000  # counts 1 + 3
    try:
        for n in range(15):  # fifteen small frames fit in the burst of twenty...
            await small.request({"type": "heartbeat", "id": f"s{n}", "pad": "x" * 8000})
        await ping(small)
        large_ones = [{"type": "heartbeat", "id": f"l{n}", "pad": pad} for n in range(15)]
        assert await answered_until_closed(large, large_ones) < 15  # ...fifteen large do not
    finally:
        for peer in (small, large):
            await peer.close()


async def refused_with(gw: GatewayProcess, user: str, headers: dict[str, str]) -> int:
    token = make_token(gw.secret, user)
    with pytest.raises(InvalidStatus) as refused:
        await connect(gw.ws_url, open_timeout=DEADLINE,
                      additional_headers={"Authorization": f"Bearer {token}", **headers})
    assert refused.value.response.headers.get("Retry-After")
    return refused.value.response.status_code


async def test_connections_per_user_are_capped(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(env={"ROOMCAST_MAX_CONNECTIONS_PER_USER": "3"})
    user = uid("greedy")
    held = [await connect_peer(gw, user) for _ in range(3)]
    try:
        for _ in range(20):
            assert await refused_with(gw, user, {}) == 429
        other = await connect_peer(gw, uid("other"))  # another user is not affected
        await other.close()
        await held.pop().close()
        again = await connect_peer(gw, user)  # the slot is released with the connection
        held.append(again)
        await ping(again)
    finally:
        for peer in held:
            await peer.close()


async def test_connections_per_client_ip_are_capped(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(env={"ROOMCAST_MAX_CONNECTIONS_PER_IP": "3",
                              "ROOMCAST_TRUSTED_PROXIES": "127.0.0.1"})
    crowd = {"X-Forwarded-For": "203.0.113.7"}
    held = [await connect_peer(gw, uid("u"), headers=crowd) for _ in range(3)]
    try:
        for _ in range(20):
            assert await refused_with(gw, uid("u"), crowd) == 429
        # Another client address (as the trusted proxy reports it) is not affected.
        elsewhere = await connect_peer(gw, uid("u"), headers={"X-Forwarded-For": "203.0.113.8"})
        await ping(elsewhere)
        await elsewhere.close()
    finally:
        for peer in held:
            await peer.close()
