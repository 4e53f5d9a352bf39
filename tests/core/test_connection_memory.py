"""What an open connection keeps alive, and the handshake's failure path that frees it.

Every object a connection holds is memory of every idle connection: the handshake's
frames (its token, claims and groups) must be gone once the connection is served.
The app runs in this process to look at its objects (still real sockets).
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from roomcast import config
from roomcast.auth.claims import Claims
from roomcast.hub import LocalConnection
from roomcast.node import Node
from roomcast.protocol.envelope import Publish
from roomcast.server.app import create_app
from roomcast.server.state import GATEWAY
from roomcast.types import ConnId
from roomcast.writer import ConnectionWriter
from tests.core.support import eventually
from tests.helpers.tokens import make_token
from tests.helpers.ws import TIMEOUT, Peer

SECRET = "connection-memory-secret-" + "x" * 20
WEBSOCKET_MODULE = "roomcast/server/websocket.py"

Start = Callable[..., Awaitable[TestServer]]


@pytest.fixture
async def servers(tmp_path: Path) -> AsyncIterator[Start]:
    started: list[TestServer] = []

    async def start(**env: str) -> TestServer:
        settings = config.load(None, {"JWT_SECRET": SECRET,
                                      "ROOMCAST_DB": str(tmp_path / f"{len(started)}.db"),
                                      **env})
        server = TestServer(create_app(settings), host="127.0.0.1", port=0)
        await server.start_server()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.close()


async def open_as(server: TestServer, user: str) -> Peer:
    headers = {"Authorization": f"Bearer {make_token(SECRET, user, groups=['g1'])}"}
    url = f"ws://127.0.0.1:{server.port}/websocket/connect"
    peer = Peer(await connect(url, additional_headers=headers, open_timeout=TIMEOUT))
    peer.welcome = await peer.recv()
    while len(peer.rooms) < 2:
        await peer.recv()
    return peer


def live_endpoint_coroutines() -> list[str]:
    """The names of the endpoint module's coroutines alive (but the liveness task's)."""
    return sorted(
        o.__qualname__ for o in gc.get_objects()
        if inspect.iscoroutine(o) and o.cr_code.co_filename.endswith(WEBSOCKET_MODULE)
        and o.__qualname__ != "liveness"
    )


async def test_a_served_connection_keeps_nothing_of_its_handshake(servers: Start) -> None:
    server = await servers()
    peer = await open_as(server, "mem-user")
    try:
        gc.collect()
        # The endpoint's frame and the serving one only, suspended in ws.receive().
        assert live_endpoint_coroutines() == ["_serve", "websocket_endpoint"]
        assert not [o for o in gc.get_objects()
                    if isinstance(o, Claims) and o.user_id == "mem-user"]
        # Still the same connection, answering.
        reply = await peer.request({"id": "p", "type": "system", "data": {"action": "ping"}})
        assert reply["data"]["action"] == "pong"
    finally:
        await peer.close()


async def test_an_idle_connection_keeps_nothing_of_its_last_message(servers: Start) -> None:
    # A publication's parsed payload (up to the message size limit) stayed referenced
    # by the read loop until the connection's next message.
    server = await servers()
    peer = await open_as(server, "talks-then-idles")
    try:
        reply = await peer.request({"id": "m1", "type": "message", "room": "group:g1",
                                    "data": {"text": "x" * 50_000}})
        assert reply.get("type") != "error", reply
        gc.collect()
        assert not [o for o in gc.get_objects() if isinstance(o, Publish)]
    finally:
        await peer.close()


def _server_side_objects() -> list[object]:
    """The connection records, writers and aiohttp WebSocket responses alive (tracked)."""
    kinds = (LocalConnection, ConnectionWriter, web.WebSocketResponse)
    return [o for o in gc.get_objects() if isinstance(o, kinds)]


def _kick(node: Node, conn_id: str) -> None:
    node.hub.connections[ConnId(conn_id)].close(4000, "kicked by the test")


@pytest.mark.parametrize("ending", ["client closes", "client vanishes", "server closes"])
async def test_a_closed_connection_is_freed_without_the_cycle_collector(
    servers: Start, ending: str,
) -> None:
    # A cycle (the connection and its closer, the writer and its overflow callback) kept
    # each closed connection, socket objects and buffers included, until a full
    # collection: at 10,000 connections and 10% churn a minute, tens of MB. (A third one,
    # aiohttp's stored error of a reset peer and its traceback's frames, shows only when
    # the reset reaches a `roomcast serve` process, not this in-process server.)
    # The grace before a stuck close is cut holds the response on a timer: short here.
    server = await servers(ROOMCAST_PING_INTERVAL="1", ROOMCAST_PING_TIMEOUT="2")
    node = server.app[GATEWAY].node
    peer = await open_as(server, "frees-" + ending.replace(" ", "-"))
    conn_id = peer.welcome["data"]["connection_id"]
    # Until a liveness pass pinged it (its pong moved last_seen): what the pass looked
    # at must not outlive it either.
    opened = node.hub.connections[ConnId(conn_id)].last_seen
    await eventually(lambda: node.hub.connections[ConnId(conn_id)].last_seen > opened,
                     "a liveness pass to ping it")
    gc.collect()
    assert len(_server_side_objects()) == 3
    gc.disable()
    try:
        if ending == "client closes":
            await peer.close()
        elif ending == "client vanishes":
            # A reset, as from a peer that went away: our close frame then fails to send.
            sock = peer.ws.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            peer.ws.transport.abort()
        else:
            _kick(node, conn_id)
            await asyncio.wait_for(peer.ws.wait_closed(), TIMEOUT)
        await eventually(lambda: conn_id not in node.hub.connections, "the hub to drop it")
        await eventually(lambda: not _server_side_objects(),
                         "the connection to be freed by reference counting")
    finally:
        gc.enable()


async def test_a_failure_while_opening_closes_1011_and_frees_the_users_slot(
    servers: Start, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    server = await servers(ROOMCAST_MAX_CONNECTIONS_PER_USER="1")
    original = Node.open_connection
    calls = 0

    async def failing_once(self: Node, conn: LocalConnection, *args: object,
                           **kwargs: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            self.hub.add(conn)  # half-way in: the close must take it out again
            raise RuntimeError("injected fault")
        await original(self, conn, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Node, "open_connection", failing_once)
    headers = {"Authorization": f"Bearer {make_token(SECRET, 'opens-twice')}"}
    url = f"ws://127.0.0.1:{server.port}/websocket/connect"
    with caplog.at_level(logging.INFO, logger="roomcast.websocket"):
        ws = await connect(url, additional_headers=headers, open_timeout=TIMEOUT)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert (ws.close_code, ws.close_reason) == (1011, "internal error")
        # One connection per user: the second gets in only if the first freed its slot.
        peer = await open_as(server, "opens-twice")
    try:
        messages = [r.getMessage() for r in caplog.records]
        assert messages.count("connection_failed") == 1
        (gone,) = [r for r in caplog.records if r.getMessage() == "disconnect"]
        assert getattr(gone, "fields", {}).get("reason") == "internal error"
        node = server.app[GATEWAY].node
        assert list(node.hub.connections) == [peer.welcome["data"]["connection_id"]]
    finally:
        await peer.close()
