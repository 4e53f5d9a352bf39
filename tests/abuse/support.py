"""Helpers of the abuse tests: gateways exposed to hostile clients, raw sockets, bounded waits.

Every test here attacks a real ``roomcast serve`` process over loopback and asserts what
the gateway does about it (refuses, closes, pauses, keeps serving others), never how fast.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import psutil

from tests.helpers.gateway import GatewayProcess
from tests.helpers.ws import Message, Peer

API_KEY = "abuse-api-key-0123456789abcdef"
#: Bound of every wait for an event: a hang fails the test instead of blocking the suite.
DEADLINE = 20.0

T = TypeVar("T")


def uid(prefix: str) -> str:
    """An id of this test alone (gateways are shared by a module)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def api_client(gw: GatewayProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=gw.base_url, timeout=DEADLINE,
                             headers={"X-API-Key": API_KEY})


async def eventually(check: Callable[[], Awaitable[T | None]], what: str,
                     deadline: float = DEADLINE) -> T:
    """Poll ``check`` until it returns something other than None, or fail at the deadline.

    Only for state without an event to await (the gateway's own bookkeeping).
    """
    end = time.monotonic() + deadline
    while True:
        result = await check()
        if result is not None:
            return result
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def ping(peer: Peer) -> list[Message]:
    """A round trip; returns every message that arrived before the pong (pong excluded)."""
    mid = uid("ping")
    await peer.send({"type": "system", "id": mid, "data": {"action": "ping"}})
    seen: list[Message] = []
    async with asyncio.timeout(DEADLINE):
        while True:
            msg = await peer.recv()
            if msg.get("id") == mid:
                assert msg["data"]["action"] == "pong", msg
                return seen
            seen.append(msg)


def log_events(gw: GatewayProcess, event: str) -> list[dict[str, Any]]:
    """The gateway's JSON log lines of one event."""
    out = []
    for line in gw.log().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") == event:
            out.append(record)
    return out


async def raw_upgrade(gw: GatewayProcess, token: str, *, rcvbuf: int | None = None,
                      headers: dict[str, str] | None = None,
                      ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int]:
    """A WebSocket handshake on a plain socket, leaving the socket unread afterwards.

    Returns the stream pair and the client's local port (to find it on the gateway's side).
    """
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", gw.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET {gw.ws_url.split(str(gw.port), 1)[1]} HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\n"
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n{extra}\r\n".encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer, sock.getsockname()[1]


def gateway_peers(gw: GatewayProcess) -> set[int]:
    """The remote ports of the gateway process's TCP connections (what it holds open)."""
    assert gw.proc is not None
    return {c.raddr.port for c in psutil.Process(gw.proc.pid).net_connections(kind="tcp")
            if c.raddr}


async def server_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The next frame the gateway sends: its opcode and payload."""
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        length = struct.unpack("!H", await reader.readexactly(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", await reader.readexactly(8))[0]
    return first & 0x0F, await reader.readexactly(length)
