"""A small test-side WebSocket client speaking roomcast's envelopes."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tests.helpers.gateway import GatewayProcess
from tests.helpers.tokens import make_token

Message = dict[str, Any]
#: Bound of a wait for a message: generous, as a busy machine is slow; a hang still fails.
TIMEOUT = 30.0


class Peer:
    """One connected test client; ``welcome`` and initial rooms are read at connect."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.welcome: Message = {}
        self.rooms: set[str] = set()
        self.conn_id = ""

    async def send(self, message: Message | str | bytes) -> None:
        await self.ws.send(message if isinstance(message, str | bytes) else json.dumps(message))

    async def recv(self, timeout: float = TIMEOUT) -> Message:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        msg: Message = json.loads(raw)
        if msg.get("type") == "room_joined":
            self.rooms.add(msg["room"])
        elif msg.get("type") == "room_left":
            self.rooms.discard(msg["room"])
        return msg

    async def expect(self, pred: Callable[[Message], bool] | str,
                     timeout: float = TIMEOUT) -> Message:
        """The next message matching ``pred`` (a type name or predicate); others are skipped."""
        check = (lambda m: m.get("type") == pred) if isinstance(pred, str) else pred
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.recv()
                if check(msg):
                    return msg

    async def request(self, message: Message) -> Message:
        """Send a message with an id and return the reply carrying that id."""
        await self.send(message)
        return await self.expect(lambda m: m.get("id") == message["id"])

    async def close(self) -> None:
        await self.ws.close()


async def connect_peer(gw: GatewayProcess, user_id: str, *, groups: list[str] | None = None,
                       token: str | None = None, headers: dict[str, str] | None = None,
                       ssl_context: ssl.SSLContext | None = None, **claims: Any) -> Peer:
    """Connect as ``user_id`` and read the welcome plus one ``room_joined`` per room."""
    tok = token or make_token(gw.secret, user_id, groups=groups, **claims)
    ws = await connect(gw.ws_url, additional_headers={"Authorization": f"Bearer {tok}",
                                                      **(headers or {})},
                       ssl=ssl_context, open_timeout=TIMEOUT, max_size=None,
                       # Unread events must never pause reading (and stall close()).
                       max_queue=None)
    peer = Peer(ws)
    peer.welcome = await peer.recv()
    peer.conn_id = peer.welcome["data"]["connection_id"]
    expected = 1 + len(set(groups or []))
    while len(peer.rooms) < expected:
        await peer.recv()
    return peer
