"""Helpers of the end-to-end gateway tests: unique ids, handshakes, status, bounded waits."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from tests.helpers.gateway import GatewayProcess
from tests.helpers.ws import TIMEOUT, Message, Peer

PING: Message = {"type": "system", "data": {"action": "ping"}}


def unique(prefix: str) -> str:
    """An id no other test uses (tests share a module-scoped gateway)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def open_peer(gw: GatewayProcess, *, rooms: int, headers: dict[str, str] | None = None,
                    origin: str | None = None, **kw: Any) -> Peer:
    """Connect with exactly these headers; read the welcome and ``rooms`` room_joined."""
    ws = await connect(gw.ws_url, additional_headers=headers or {}, origin=_origin(origin),
                       open_timeout=TIMEOUT, max_size=None, **kw)
    peer = Peer(ws)
    peer.welcome = await peer.recv()
    assert peer.welcome["type"] == "system_notification", peer.welcome
    peer.conn_id = peer.welcome["data"]["connection_id"]
    while len(peer.rooms) < rooms:
        await peer.recv()
    return peer


def _origin(origin: str | None) -> Origin | None:
    return Origin(origin) if origin is not None else None


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"falcon_auth_token={token}"}


async def refused_status(gw: GatewayProcess, headers: dict[str, str] | None = None,
                         origin: str | None = None, url: str | None = None) -> int:
    """The HTTP status of a handshake the gateway must refuse (no upgrade happens)."""
    try:
        ws = await connect(url or gw.ws_url, additional_headers=headers or {},
                           origin=_origin(origin), open_timeout=TIMEOUT)
    except InvalidStatus as exc:
        return exc.response.status_code
    await ws.close()
    raise AssertionError("the gateway upgraded a connection it should have refused")


async def ping(peer: Peer, message_id: str | None = None) -> Message:
    """A React-client heartbeat and its reply (proves the connection is alive)."""
    mid = message_id or unique("ping")
    reply = await peer.request({**PING, "id": mid})
    assert reply["type"] == "system" and reply["data"]["action"] == "pong", reply
    return reply


async def quiet(peer: Peer) -> None:
    """Nothing is queued for ``peer``: a ping's pong is the very next message.

    The gateway handles one client's frames in order and queues deliveries before the
    reply of the frame that caused them, so anything sent to ``peer`` earlier arrives first.
    """
    mid = unique("quiet")
    await peer.send({**PING, "id": mid})
    msg = await peer.recv()
    assert msg.get("id") == mid, f"expected nothing before the pong, got {msg}"


async def drain(peer: Peer) -> list[Message]:
    """Everything queued for ``peer`` so far: the messages that arrive before a ping's pong."""
    mid = unique("drain")
    await peer.send({**PING, "id": mid})
    out = []
    while (msg := await peer.recv()).get("id") != mid:
        out.append(msg)
    return out


async def send_marker(sender: Peer, room: str) -> str:
    """Post a uniquely tagged message into ``room`` and wait for its ack."""
    tag = unique("marker")
    ack = await sender.request({"id": tag, "type": "message", "room": room,
                                "data": {"marker": tag}})
    assert ack["data"].get("status") == "ok", ack
    return tag


async def next_is_marker(peer: Peer, tag: str) -> None:
    """The next message ``peer`` receives is the marker: nothing was delivered before it."""
    msg = await peer.recv()
    assert msg.get("data", {}).get("marker") == tag, f"expected marker {tag}, got {msg}"


async def status(gw: GatewayProcess) -> dict[str, Any]:
    async with httpx.AsyncClient(verify=False, timeout=TIMEOUT) as http:
        resp = await http.get(f"{gw.base_url}/websocket/status")
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def eventually(check: Callable[[], Awaitable[bool] | bool], what: str,
                     timeout: float = TIMEOUT) -> None:
    """Poll ``check`` until true (for state with no event to await, e.g. a log file)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def log_events(gw: GatewayProcess) -> list[dict[str, Any]]:
    """The gateway's JSON log lines, parsed (non-JSON lines are skipped)."""
    out = []
    for line in gw.log().splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out
