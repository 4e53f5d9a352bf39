"""Helpers for the admin API tests: credentials, ids, and asserting no stray messages."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.helpers.gateway import GatewayProcess
from tests.helpers.ws import Message, Peer, connect_peer

API_KEY = "test-api-key-0123456789abcdef"
ADMIN_USER = "listed-admin"
ADMIN_SCOPE = "websocket:admin"


def admin_env(**extra: str) -> dict[str, str]:
    """Gateway env with an API key and one listed administrator."""
    return {"ROOMCAST_API_KEY": API_KEY, "ROOMCAST_ADMIN_USERS": ADMIN_USER, **extra}


def uid(prefix: str) -> str:
    """A user or group id of this test alone (the gateway is shared by a module)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def api_client(gw: GatewayProcess, **headers: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=gw.base_url, timeout=10.0,
                             headers={"X-API-Key": API_KEY, **headers})


async def send_marker(api: httpx.AsyncClient, user_id: str) -> str:
    """Send a ``notification`` marker to a user; returns its text."""
    text = uid("marker")
    r = await api.post(f"/websocket/users/{user_id}/message",
                       json={"type": "notification", "data": {"marker": text}})
    assert r.status_code == 200, r.text
    return text


async def assert_next_is_marker(api: httpx.AsyncClient, peer: Peer, user_id: str) -> None:
    """Nothing is queued for ``peer`` but what we send now: its next message is our marker."""
    text = await send_marker(api, user_id)
    msg = await peer.recv()
    assert msg["type"] == "notification" and msg["data"].get("marker") == text, msg


async def collect_until(peer: Peer, last_type: str) -> list[Message]:
    """Messages up to and including the first of ``last_type``."""
    out: list[Message] = []
    while not out or out[-1]["type"] != last_type:
        out.append(await peer.recv())
    return out


def of_type(msgs: list[Message], kind: str, **data: Any) -> list[Message]:
    return [m for m in msgs if m["type"] == kind
            and all(m.get("data", {}).get(k) == v for k, v in data.items())]


async def connect_same_user(gw: GatewayProcess, user_id: str, n: int = 2,
                            groups: list[str] | None = None) -> list[Peer]:
    """``n`` connections of one user, each past the ``room_update`` of the later ones."""
    peers: list[Peer] = []
    rooms = 1 + len(groups or [])
    for _ in range(n):
        peers.append(await connect_peer(gw, user_id, groups=groups))
    for i, peer in enumerate(peers):
        for _ in range((n - 1 - i) * rooms):
            msg = await peer.recv()
            assert msg["type"] == "room_update" and msg["data"]["action"] == "member_joined", msg
    return peers
