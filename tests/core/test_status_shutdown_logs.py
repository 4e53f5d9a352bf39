"""Status endpoint, SIGTERM shutdown with 1001, and structured connect/disconnect logs."""

from __future__ import annotations

import asyncio
import signal
import uuid
from datetime import datetime

import httpx
import pytest

from tests.core.support import (
    bearer,
    cookie,
    eventually,
    log_events,
    open_peer,
    ping,
    refused_status,
    status,
    unique,
)
from tests.helpers.gateway import GatewayProcess
from tests.helpers.problems import answer
from tests.helpers.tokens import make_token, raw_token
from tests.helpers.ws import TIMEOUT, connect_peer

STATUS_KEYS = {"$schema", "module", "status", "stats", "message", "server_id", "cluster",
               "redis_channels"}
STATS_KEYS = {"total_connections", "active_connections", "total_rooms", "messages_processed",
              "messages_broadcast", "last_connection_time"}


async def test_status_shape_and_counts(fresh_gateway: GatewayProcess) -> None:
    """The Go gateway's shape, 200, with roomcast's extra fields beside it."""
    gw = fresh_gateway
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        resp = await http.get(f"{gw.base_url}/websocket/status")  # public: no credentials
    body = answer(resp, "Status")
    assert set(body) == STATUS_KEYS and set(body["stats"]) == STATS_KEYS
    assert (body["module"], body["status"]) == ("websocket", "healthy")
    assert body["message"] == "WebSocket service is running normally"
    assert uuid.UUID(body["server_id"])
    stats = body["stats"]
    assert (stats["total_connections"], stats["active_connections"], stats["total_rooms"]) == (
        0, 0, 0)
    assert stats["last_connection_time"] == "0001-01-01T00:00:00Z"  # Go's zero time
    assert body["redis_channels"] == []  # the in-memory broker
    assert body["cluster"] == {"connections": 0, "rooms": 0}

    group = unique("g")
    alice = await connect_peer(gw, unique("alice"), groups=[group])
    bob = await connect_peer(gw, unique("bob"), groups=[group])
    await alice.expect("room_update")
    before = (await status(gw))["stats"]
    assert (before["total_connections"], before["active_connections"]) == (2, 2)
    assert before["total_rooms"] == 3
    assert datetime.fromisoformat(before["last_connection_time"]).year > 2000
    await alice.request({"id": "m", "type": "message", "room": f"group:{group}", "data": {}})
    after = await status(gw)
    assert after["stats"]["messages_processed"] > before["messages_processed"]
    assert after["stats"]["messages_broadcast"] > before["messages_broadcast"]
    assert after["server_id"] == body["server_id"]
    await alice.close()
    await bob.close()
    await alice.ws.wait_closed()
    await bob.ws.wait_closed()

    async def both_gone() -> bool:
        return bool((await status(gw))["stats"]["active_connections"] == 0)

    await eventually(both_gone, "the closed connections to leave the counts")
    # Go's total_connections counts every connection since start.
    assert (await status(gw))["stats"]["total_connections"] == 2


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_shutdown_closes_every_client_with_1001_and_exits_0(
    fresh_gateway: GatewayProcess, sig: signal.Signals,
) -> None:
    gw = fresh_gateway
    group = unique("g")
    peers = [await connect_peer(gw, unique("u"), groups=[group]) for _ in range(5)]
    # A client that never answers the close handshake must not hold the shutdown up.
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    writer.write(
        f"GET /websocket/connect HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"Authorization: Bearer {make_token(gw.secret, unique('mute'))}\r\n\r\n".encode())
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    proc = gw.proc
    assert proc is not None
    proc.send_signal(sig)
    try:
        async with asyncio.timeout(TIMEOUT):
            for peer in peers:
                await peer.ws.wait_closed()
        assert [p.ws.close_code for p in peers] == [1001] * len(peers)
        assert {p.ws.close_reason for p in peers} == {"server shutting down"}
        assert await asyncio.to_thread(proc.wait, TIMEOUT) == 0
    finally:
        writer.close()


async def test_logs_connect_and_disconnect_without_credentials(
    fresh_gateway: GatewayProcess,
) -> None:
    gw = fresh_gateway
    by_bearer, by_cookie = unique("logb"), unique("logc")
    bearer_token = make_token(gw.secret, by_bearer)
    cookie_token = make_token(gw.secret, by_cookie)
    expired = raw_token(gw.secret, {"user_id": unique("old"), "exp": 1})
    first = await open_peer(gw, rooms=1, headers=bearer(bearer_token))
    second = await open_peer(gw, rooms=1, headers=cookie(cookie_token))
    assert await refused_status(gw, bearer(expired)) == 401
    assert await refused_status(gw, cookie(expired)) == 401
    await ping(first)
    await first.close()

    def disconnected(conn_id: str) -> bool:
        return any(e["event"] == "disconnect" and e.get("conn") == conn_id
                   for e in log_events(gw))

    await eventually(lambda: disconnected(first.conn_id), "the disconnect log line")
    assert gw.stop() == 0  # the second one is disconnected by the shutdown
    events = log_events(gw)
    for peer, user, reason, code in ((first, by_bearer, "closed by client", 1000),
                                     (second, by_cookie, "server shutting down", 1001)):
        mine = [e for e in events if e.get("conn") == peer.conn_id]
        (connect,) = [e for e in mine if e["event"] == "connect"]
        (gone,) = [e for e in mine if e["event"] == "disconnect"]
        assert connect["user"] == gone["user"] == user
        assert gone["reason"] == reason
        # The code the client got: 1001 from a stopping server, not the client's echo.
        assert gone["code"] == code
    assert [e["reason"] for e in events if e["event"] == "handshake_refused"] == [
        "expired", "expired"]
    assert all({"ts", "level", "logger", "event"} <= set(e) for e in events)
    text = gw.log()
    for token in (bearer_token, cookie_token, expired):
        assert token not in text
        assert token.split(".")[2] not in text  # not even the signature
    assert "falcon_auth_token" not in text
