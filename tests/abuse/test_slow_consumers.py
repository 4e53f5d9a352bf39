"""Clients that never read: each is cut once its backlog is dropped, nothing is kept.

A never-reading connection used to get a 3008 close frame queued behind the megabyte
it would never read, keeping that buffer and its descriptor until the liveness timeout
(60 s): 1,500 of them held over a gigabyte. Here the liveness timeout is ten minutes,
so a connection the gateway no longer holds was cut at once, not timed out.
"""

from __future__ import annotations

import httpx

from tests.abuse.support import (
    API_KEY,
    api_client,
    eventually,
    gateway_peers,
    log_events,
    raw_upgrade,
    uid,
)
from tests.conftest import GatewayFactory
from tests.helpers.tokens import make_token
from tests.helpers.ws import connect_peer

SLOTHS = 12
PAD = "x" * 60_000


async def test_never_reading_connections_are_cut_and_release_their_sockets(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory(env={
        "ROOMCAST_API_KEY": API_KEY,
        "ROOMCAST_MAX_QUEUE_BYTES": str(256 * 1024),
        "ROOMCAST_PING_INTERVAL": "300",
        "ROOMCAST_PING_TIMEOUT": "600",
    })
    user = uid("sloth")
    token = make_token(gw.secret, user)
    sloths = [await raw_upgrade(gw, token, rcvbuf=4096) for _ in range(SLOTHS)]
    ports = {port for _, _, port in sloths}
    bystander = await connect_peer(gw, uid("bystander"))
    api: httpx.AsyncClient = api_client(gw)
    try:
        assert ports <= gateway_peers(gw)
        # Messages to the user until the gateway has given up on every sloth.
        for n in range(400):
            r = await api.post(f"/websocket/users/{user}/message",
                               json={"type": "notification", "data": {"n": n, "pad": PAD}})
            if r.status_code == 404 or len(log_events(gw, "slow_consumer")) >= SLOTHS:
                break
            assert r.status_code == 200, r.text
        assert len(log_events(gw, "slow_consumer")) == SLOTHS

        async def released() -> bool | None:
            return True if not ports & gateway_peers(gw) else None

        await eventually(released, "the gateway to let go of every never-reading socket")
        # Everyone else is served as before.
        await bystander.request({"type": "system", "id": "still-here",
                                 "data": {"action": "ping"}})
    finally:
        await api.aclose()
        await bystander.close()
        for _, writer, _ in sloths:
            writer.transport.abort()
