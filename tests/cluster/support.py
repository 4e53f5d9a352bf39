"""A cluster of real gateway processes on one real ``redis-server``, and ways to observe it.

Ordering facts the helpers rely on (docs/protocol.md, broker contract):

- Redis hands every subscriber the publications in the order it executed them, so a
  marker published with a raw client *after* something else reached Redis arrives,
  at every connection of every instance, after that something (:func:`barrier`).
- A gateway answers a client's ``system`` ping only after it finished handling the
  connect (greeting, rooms, ``room_update`` publications): :func:`join` waits for it.
- Registry writes lag behind connects and room changes by a loop turn or a round trip,
  so whatever reads the registry is polled with a bounded deadline (:func:`eventually`).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx
import redis.asyncio as aioredis

from tests.helpers.gateway import GatewayProcess
from tests.helpers.redis_server import RedisServer
from tests.helpers.tokens import make_token
from tests.helpers.ws import Message, Peer, connect_peer

API_KEY = "cluster-api-key-0123456789abcdef"
#: Bound of every wait: a hang fails the test instead of blocking the suite. Generous, as a
#: busy machine is slow.
DEADLINE = 30.0
#: The Go gateway's pub/sub channels (docs/protocol.md).
MESSAGES = "websocket:messages"
ROOMS = "websocket:rooms"
USERS = "websocket:users"
SYSTEM = "websocket:system"

T = TypeVar("T")


def uid(prefix: str) -> str:
    """An id of this test alone (clusters are shared by a module)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Cluster:
    """``n`` gateways sharing one Redis, one JWT secret and one API key."""

    def __init__(self, redis: RedisServer, n: int, **env: str) -> None:
        self.redis = redis
        # Hex: a secret starting with "-" would be read as an option by the CLI.
        self.secret = secrets.token_hex(32)
        self.server_ids = [str(uuid.uuid4()) for _ in range(n)]
        self.gateways = [
            GatewayProcess(env={
                "REDIS_URL": redis.url,
                "JWT_SECRET": self.secret,
                "ROOMCAST_API_KEY": API_KEY,
                "ROOMCAST_SERVER_ID": server_id,
                **env,
            })
            for server_id in self.server_ids
        ]
        for gw in self.gateways:
            gw.secret = self.secret  # what test tokens are signed with

    def start(self) -> Cluster:
        """Start every gateway at once (each start waits for its port)."""
        with ThreadPoolExecutor(len(self.gateways)) as pool:
            list(pool.map(GatewayProcess.start, self.gateways))
        return self

    def close(self) -> None:
        for gw in self.gateways:
            gw.close()

    def logs(self) -> str:
        return "\n".join(f"--- gateway {i}\n{gw.log()}" for i, gw in enumerate(self.gateways))


def api_client(gw: GatewayProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=gw.base_url, timeout=DEADLINE,
                             headers={"X-API-Key": API_KEY})


async def eventually(check: Callable[[], Awaitable[T | None]], what: str,
                     deadline: float = DEADLINE) -> T:
    """Poll ``check`` until it returns something other than None (or fail at the deadline).

    For state without an event to await (registry reads, TTL expiry, reconnection).
    """
    end = time.monotonic() + deadline
    while True:
        result = await check()
        if result is not None:
            return result
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


# -- connections ---------------------------------------------------------------

async def ping(peer: Peer) -> None:
    """A round trip: everything the gateway did for this connection before is done."""
    reply = await peer.request({"type": "system", "id": uid("ping"), "data": {"action": "ping"}})
    assert reply["data"]["action"] == "pong", reply


async def join(gw: GatewayProcess, user_id: str, groups: list[str] | None = None,
               **claims: Any) -> Peer:
    """Connect, and return once the gateway has published the connect's room events."""
    peer = await connect_peer(gw, user_id, groups=groups, **claims)
    await ping(peer)
    return peer


async def join_unread(gw: GatewayProcess, user_id: str, groups: list[str]) -> Peer:
    """Connect with ``groups`` in the token, leaving their ``room_joined`` events unread.

    The welcome and the personal room (always joined first) are read.
    """
    token = make_token(gw.secret, user_id, groups=groups)
    return await connect_peer(gw, user_id, token=token)


async def close_all(*peers: Peer) -> None:
    await asyncio.gather(*(p.close() for p in peers), return_exceptions=True)


async def registered(api: httpx.AsyncClient, conn_id: str, *rooms: str) -> dict[str, Any]:
    """Wait until the cluster-wide registry shows the connection in (at least) ``rooms``.

    Ask through an instance that does not hold the connection: its own instance
    answers from memory, before (or without) the entry being in Redis.
    """

    async def check() -> dict[str, Any] | None:
        r = await api.get(f"/websocket/connections/{conn_id}")
        if r.status_code != 200:
            return None
        conn: dict[str, Any] = r.json()["connection"]
        return conn if set(rooms) <= set(conn["rooms"]) else None

    return await eventually(check, f"connection {conn_id} registered in {rooms}")


async def unregistered(api: httpx.AsyncClient, conn_id: str, room: str) -> None:
    """Wait until the cluster-wide registry shows the connection out of ``room``
    (its instance writes the change a write window after the connection left)."""

    async def check() -> bool | None:
        r = await api.get(f"/websocket/connections/{conn_id}")
        assert r.status_code == 200, r.text
        return True if room not in r.json()["connection"]["rooms"] else None

    await eventually(check, f"connection {conn_id} out of {room} in the registry")


# -- raw Redis publications, as the Go gateway makes them ------------------------

GO_SERVER = "9b2e4c1a-0000-4000-8000-0000000060a0"


def go_message(type: str = "message", **fields: Any) -> dict[str, Any]:
    """A Go gateway envelope: nanosecond RFC 3339 timestamp, with an offset."""
    return {"id": str(uuid.uuid4()), "type": type, "data": {"text": uid("go")},
            "timestamp": "2024-05-01T14:00:00.123456789+02:00", **fields}


def go_payload(message: dict[str, Any], *, server_id: str = GO_SERVER,
               timestamp: Any = "2024-05-01T12:00:00.987654321Z", **extra: Any) -> bytes:
    """``{"server_id", "message", "timestamp"}`` encoded as Go's encoding/json does."""
    body = {"server_id": server_id, "message": message, "timestamp": timestamp, **extra}
    return json.dumps(body, separators=(",", ":")).encode()


async def barrier(redis: aioredis.Redis, *peers: Peer) -> list[list[Message]]:
    """Everything each peer received before a marker sent to it through Redis now.

    The marker is a direct Go-format message per connection, so it queues behind
    every publication that reached Redis before it, from whatever instance.
    """
    marker = uid("marker")
    for peer in peers:
        msg = go_message("notification", to=peer.conn_id, data={"marker": marker})
        await redis.publish(MESSAGES, go_payload(msg))
    out = []
    for peer in peers:
        before: list[Message] = []
        while True:
            msg = await peer.recv()
            if msg.get("to") == peer.conn_id and msg.get("data", {}).get("marker") == marker:
                break
            before.append(msg)
        out.append(before)
    return out


async def assert_quiet(redis: aioredis.Redis, *peers: Peer) -> None:
    """Nothing is pending for any of the peers: the next message of each is a marker."""
    pending = await barrier(redis, *peers)
    for peer, msgs in zip(peers, pending, strict=True):
        assert msgs == [], f"unexpected messages for {peer.conn_id}: {msgs}"


def with_text(msgs: list[Message], text: str) -> list[Message]:
    """The messages whose ``data.text`` is ``text``."""
    return [m for m in msgs if isinstance(m.get("data"), dict) and m["data"].get("text") == text]


async def collect(peer: Peer, pred: Callable[[Message], bool]) -> list[Message]:
    """Messages up to and including the first that matches ``pred``."""
    out: list[Message] = []
    while not out or not pred(out[-1]):
        out.append(await peer.recv())
    return out


def reply_to(message_id: str) -> Callable[[Message], bool]:
    return lambda m: m.get("id") == message_id
