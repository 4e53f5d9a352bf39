"""Events the gateway sends on its server API's behalf: kicks, memberships, profiles; TLS."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from roomcast.client import (
    Client,
    ConnectionState,
    Invalidator,
    ServerClosed,
)
from roomcast.client.invalidator import CacheKey
from roomcast.protocol.codes import CloseCode
from tests.client.support import FAST, client_for
from tests.helpers.gateway import GatewayProcess
from tests.helpers.tokens import make_token


def admin(gw: GatewayProcess) -> httpx.AsyncClient:
    token = make_token(gw.secret, "ops-admin", scopes="websocket:admin")
    return httpx.AsyncClient(
        base_url=gw.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


async def test_kicked_client_does_not_reconnect(gateway: GatewayProcess) -> None:
    client = client_for(gateway, "kick-me")
    async with client:
        states = client.states()
        async with admin(gateway) as api:
            resp = await api.post(f"/websocket/connections/{client.connection_id}/disconnect")
            assert resp.status_code == 200, resp.text
        with pytest.raises(ServerClosed) as err:
            await client.wait_closed()
        assert err.value.code == CloseCode.KICKED
        assert [s async for s in states] == [ConnectionState.ERROR]


async def test_membership_changes_move_rooms_and_invalidate(gateway: GatewayProcess) -> None:
    cache: dict[Any, str] = {("groups",): "x", ("users", "u"): "x", ("chat", "threads"): "x"}
    keys: asyncio.Queue[CacheKey] = asyncio.Queue()
    async with client_for(gateway, "member") as client:
        client.on("*", Invalidator(cache, on_invalidate=keys.put_nowait))
        events = client.messages("group_membership_change")
        room = client.room("group:blue")
        assert not room.joined
        async with admin(gateway) as api:
            resp = await api.put("/websocket/users/member/groups/blue", json={"name": "Blue"})
            assert resp.json()["changed"] is True
            change = await events.get()
            assert (change.data["group_id"], change.data["joined"]) == ("blue", True)
            await room.wait_joined()
            assert "group:blue" in client.rooms
            assert room.display_name == "Group: Blue"
            assert [await keys.get(), await keys.get()] == [("groups",), ("users",)]
            assert cache == {("chat", "threads"): "x"}

            await api.delete("/websocket/users/member/groups/blue")
            change = await events.get()
            assert change.data["joined"] is False
            assert not room.joined
            assert room.left_reason == "membership_removed"
            assert "group:blue" not in client.rooms


async def test_profile_update_reaches_handlers_and_invalidates(gateway: GatewayProcess) -> None:
    cache: dict[Any, str] = {("auth", "current-user"): "me", ("users",): "all", ("x",): "y"}
    seen: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    async with client_for(gateway, "prof") as client:
        client.on("*", Invalidator(cache))
        client.on("user_profile_update", lambda m: seen.put_nowait(dict(m.data)))
        async with admin(gateway) as api:
            resp = await api.post("/websocket/users/prof/profile", json={"profile": {"a": 1}})
            assert resp.status_code == 200, resp.text
        data = await seen.get()
        assert (data["user_id"], data["profile"]) == ("prof", {"a": 1})
    assert cache == {("x",): "y"}


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


async def test_wss_with_a_trusted_certificate(
    gateway_factory: Any, ca: trustme.CA, tmp_path: Path
) -> None:
    cert = ca.issue_cert("127.0.0.1")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    gw = gateway_factory(
        args=["--ssl-certfile", str(certfile), "--ssl-keyfile", str(keyfile)], tls=True
    )
    assert gw.ws_url.startswith("wss://")
    trusted = ssl.create_default_context()
    ca.configure_trust(trusted)
    async with client_for(gw, "tls-user", ssl=trusted) as client:
        assert (await client.ping()).data["action"] == "pong"
    # An untrusted certificate is fatal rather than retried for ever.
    with pytest.raises(ssl.SSLCertVerificationError):
        await Client(gw.ws_url, token="t", backoff=FAST).connect()
