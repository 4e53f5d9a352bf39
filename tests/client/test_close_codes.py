"""Close codes decide between reconnecting and stopping; what the handshake sends.

The gateway only sends some codes on its own (1001 on shutdown is tested with it), so a
minimal WebSocket server here closes with each code after the welcome message.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from websockets.asyncio.server import ServerConnection, serve

from roomcast.client import (
    Client,
    ClientError,
    ConnectionState,
    HandshakeFailed,
    ServerClosed,
)
from roomcast.protocol.codes import CloseCode
from tests.client.support import FAST, until_state
from tests.helpers.gateway import GatewayProcess


@asynccontextmanager
async def closing_server(first_close: int) -> AsyncIterator[tuple[str, list[str]]]:
    """Welcome each client, close the first connection with ``first_close``, keep later ones."""
    connections: list[str] = []

    async def handler(ws: ServerConnection) -> None:
        conn_id = f"c{len(connections) + 1}"
        connections.append(conn_id)
        welcome = {
            "type": "system_notification",
            "id": "w",
            "data": {
                "message": "Connected to WebSocket",
                "connection_id": conn_id,
                "user_id": "u1",
            },
        }
        await ws.send(json.dumps(welcome))
        if len(connections) == 1:
            await ws.close(first_close, "test")
        else:
            await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/websocket/connect", connections


@pytest.mark.parametrize("code", [CloseCode.POLICY_VIOLATION, CloseCode.KICKED])
async def test_no_reconnect_codes_stop_the_client(code: CloseCode) -> None:
    async with closing_server(code) as (url, connections):
        client = Client(url, token="t", backoff=FAST)
        states = client.states()
        client.start()
        with pytest.raises(ServerClosed) as err:
            await client.wait_closed()
        assert err.value.code == code
        assert client.state is ConnectionState.ERROR
        assert [s async for s in states][-2:] == [ConnectionState.CONNECTED, ConnectionState.ERROR]
        assert connections == ["c1"]
        await client.close()


@pytest.mark.parametrize(
    "code",
    [
        CloseCode.GOING_AWAY,
        CloseCode.SLOW_CONSUMER,
        CloseCode.STALE,
        CloseCode.INSUFFICIENT_STATE,
        CloseCode.INTERNAL_ERROR,
        CloseCode.MESSAGE_TOO_BIG,
        4321,
    ],
)
async def test_other_codes_reconnect(code: int) -> None:
    async with closing_server(code) as (url, connections):
        client = Client(url, token="t", backoff=FAST)
        states = client.states()
        async with client:
            assert client.connection_id == "c1"
            await until_state(states, ConnectionState.RECONNECTING)
            await until_state(states, ConnectionState.CONNECTED)
            assert client.connection_id == "c2"
            assert connections == ["c1", "c2"]


async def test_wrong_path_is_fatal_not_retried(gateway: GatewayProcess) -> None:
    url = f"ws://127.0.0.1:{gateway.port}/no/such/path"
    with pytest.raises(HandshakeFailed) as err:
        await Client(url, token="t", backoff=FAST).connect()
    assert err.value.status == 404


async def test_unknown_welcome_still_connects() -> None:
    """A server whose first message is not the welcome (no ids) is still usable."""

    async def handler(ws: ServerConnection) -> None:
        await ws.send(json.dumps({"type": "notification", "data": {"n": 1}}))
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        client = Client(f"ws://127.0.0.1:{port}/", token="t")
        stream = client.messages()
        async with client:
            assert client.connection_id is None
            assert (await stream.get()).type == "notification"
            with pytest.raises(ClientError, match="known once connected"):
                client.personal_room()


async def test_handshake_sends_credentials_and_extra_headers() -> None:
    seen: list[dict[str, str]] = []

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        seen.append(dict(ws.request.headers.raw_items()))
        await ws.send(
            json.dumps(
                {"type": "system_notification", "data": {"connection_id": "c", "user_id": "u"}}
            )
        )
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/websocket/connect"
        extra = {"X-Request-Id": "r-1"}
        async with Client(url, token="jwt-1", headers=extra, origin="https://app.example"):
            pass
        async with Client(url, cookie="jwt-2"):
            pass
    assert seen[0]["Authorization"] == "Bearer jwt-1"
    assert (seen[0]["X-Request-Id"], seen[0]["Origin"]) == ("r-1", "https://app.example")
    assert "Cookie" not in seen[0]
    assert seen[1]["Cookie"] == "falcon_auth_token=jwt-2"
    assert "Authorization" not in seen[1]
