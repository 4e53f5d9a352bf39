"""The SDK's side of recovery, against a scripted server that answers as the protocol says.

The real gateway is tested in ``test_recovery.py``; here a minimal WebSocket server
makes every answer happen on cue (a replay with a duplicate, a refused recovery, a new
epoch), and records what the client sent, in order.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from roomcast.client import (
    Client,
    ConnectionState,
    Invalidator,
    Message,
    Position,
    Reason,
    Recovery,
)
from roomcast.protocol.codes import CloseCode
from tests.client.support import FAST, until_state

ROOM = "group:ops"
WAIT = 10.0


@dataclass
class Connection:
    """One connection as the scripted server saw it."""

    ws: ServerConnection
    query: dict[str, list[str]]
    frames: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def frame(self, index: int) -> dict[str, Any]:
        """The client's ``index``-th frame on this connection, once it has arrived."""
        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(lambda: len(self.frames) > index), WAIT)
        return self.frames[index]

    async def send(self, envelope: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(envelope))


@dataclass
class Script:
    """The room's stream, and what the server answers to a position."""

    epoch: str = "e1"
    log: list[dict[str, Any]] = field(default_factory=list)
    #: The oldest offset still stored (older ones expired).
    first: int = 1
    connections: asyncio.Queue[Connection] = field(default_factory=asyncio.Queue)

    @property
    def top(self) -> int:
        return len(self.log)

    def append(self, n: int) -> dict[str, Any]:
        env = {"id": f"p{self.top + 1}", "type": "message", "room": ROOM, "data": {"n": n},
               "offset": self.top + 1, "epoch": self.epoch}
        self.log.append(env)
        return env

    def answer(self, since: Position | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """``room_joined`` data for a connection with position ``since``, and the replay."""
        data: dict[str, Any] = {"room": ROOM, "type": "group", "name": "Group: ops",
                                "member_count": 1, "epoch": self.epoch, "offset": self.top}
        if since is None:
            return data, []
        ok = since.epoch == self.epoch and since.offset + 1 >= self.first
        replay = self.log[since.offset:] if ok else []
        return {**data, "recovered": ok, "replayed": len(replay)}, replay


@asynccontextmanager
async def scripted(script: Script) -> AsyncIterator[str]:
    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        conn = Connection(ws, parse_qs(urlsplit(ws.request.path).query))
        await conn.send({"type": "system_notification", "data": {
            "message": "Connected to WebSocket", "connection_id": "c", "user_id": "u1"}})
        reader = asyncio.create_task(read(conn))
        since = None
        recover_id = None
        if conn.query.get("recover") == ["1"]:
            try:
                first = await conn.frame(0)
            except TimeoutError:  # as the gateway: join without positions
                first = {}
            if first.get("data", {}).get("action") == "recover":
                recover_id = first["id"]
                since = Position.from_wire(first["data"]["positions"].get(ROOM))
        joined, replay = script.answer(since)
        await conn.send({"type": "room_joined", "room": ROOM, "data": joined})
        for env in replay:
            await conn.send(env)
        if recover_id is not None:
            await conn.send({"type": "system", "id": recover_id, "data": {
                "action": "ack", "status": "ok", "action_requested": "recover"}})
        # Live publications of the test come after the join, as on a real server.
        script.connections.put_nowait(conn)
        await reader

    async def read(conn: Connection) -> None:
        try:
            async for frame in conn.ws:
                message = json.loads(frame)
                async with conn.arrived:
                    conn.frames.append(message)
                    conn.arrived.notify_all()
                if message.get("data", {}).get("action") == "ping":
                    await conn.send({"type": "system", "id": message["id"],
                                     "data": {"action": "pong"}})
        except ConnectionClosed:
            pass

    async with serve(handler, "127.0.0.1", 0) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/websocket/connect"


class Gate:
    """The client's reconnect sleep, opened by the test (so it can queue while offline)."""

    def __init__(self) -> None:
        self._open = asyncio.Event()

    async def sleep(self, _delay: float) -> None:
        await self._open.wait()
        self._open.clear()

    def open(self) -> None:
        self._open.set()


class Seen:
    """Room messages and recovery outcomes, in the order the app's handlers got them."""

    def __init__(self, client: Client) -> None:
        self.events: list[int | Recovery] = []
        self.changed = asyncio.Condition()
        client.on_room(ROOM, self._message)
        client.on_recovery(self._recovery)

    async def _message(self, message: Message) -> None:
        if message.type == "message":
            await self._add(message.data["n"])

    async def _recovery(self, outcome: Recovery) -> None:
        await self._add(outcome)

    async def _add(self, item: int | Recovery) -> None:
        async with self.changed:
            self.events.append(item)
            self.changed.notify_all()

    async def count(self, n: int) -> list[int | Recovery]:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: len(self.events) >= n), WAIT)
            return list(self.events)


@asynccontextmanager
async def running(script: Script, **kw: Any) -> AsyncIterator[tuple[Client, Seen]]:
    """A client of the scripted server, connected, its handlers registered before that."""
    async with scripted(script) as url:
        client = Client(url, token="t", backoff=FAST, **kw)
        seen = Seen(client)
        async with client:
            yield client, seen


async def publish(conn: Connection, script: Script, *ns: int) -> None:
    for n in ns:
        await conn.send(script.append(n))


async def test_first_connection_joins_without_recovery() -> None:
    script = Script()
    async with running(script) as (client, _):
        conn = await script.connections.get()
        await client.room(ROOM).wait_joined()
        assert "recover" not in conn.query
        await client.ping()
        assert [f["data"]["action"] for f in conn.frames] == ["ping"]
        assert client.room(ROOM).recovered is None
        assert client.position(ROOM) == Position("e1", 0)


async def test_reconnect_hands_positions_over_first_then_flushes_the_queue() -> None:
    script, gate = Script(), Gate()
    async with running(script, sleep=gate.sleep) as (client, seen):
        first = await script.connections.get()
        await publish(first, script, 1, 2, 3)
        await seen.count(3)
        states = client.states()
        await first.ws.close(CloseCode.INSUFFICIENT_STATE, "gap")
        await until_state(states, ConnectionState.RECONNECTING)
        queued = asyncio.create_task(client.room(ROOM).send({"n": "queued"}))
        await asyncio.sleep(0)  # one loop turn: the send reaches the offline queue
        assert client.queued == 1
        await publish_offline(script, 4, 5)
        gate.open()

        second = await script.connections.get()
        assert second.query["recover"] == ["1"]
        recover = await second.frame(0)
        assert recover["data"] == {"action": "recover",
                                   "positions": {ROOM: {"epoch": "e1", "offset": 3}}}
        assert (await second.frame(1))["data"] == {"n": "queued"}
        await second.send({"type": "system", "id": second.frames[1]["id"],
                           "data": {"action": "ack", "status": "ok"}})
        await queued
        events = await seen.count(6)
        assert events == [1, 2, 3, Recovery(ROOM, True, Reason.RECOVERED, 2, Position("e1", 3)),
                          4, 5]
        assert client.room(ROOM).recovered is True


async def publish_offline(script: Script, *ns: int) -> None:
    """Publications made while the client is away: only the stream has them."""
    for n in ns:
        script.append(n)


async def test_replayed_and_live_duplicates_reach_the_app_once() -> None:
    script, gate = Script(), Gate()
    async with running(script, sleep=gate.sleep) as (client, seen):
        first = await script.connections.get()
        await publish(first, script, 1, 2)
        await seen.count(2)
        await first.ws.close(CloseCode.GOING_AWAY, "restart")
        await publish_offline(script, 3, 4)
        gate.open()
        second = await script.connections.get()
        await seen.count(5)  # 1, 2, the outcome, and the replay of 3 and 4
        # The same publications again, live (as a retried delivery would be), then new ones.
        for env in script.log:
            await second.send(env)
        await publish(second, script, 5)
        events = await seen.count(6)
        assert [e for e in events if isinstance(e, int)] == [1, 2, 3, 4, 5]
        assert client.duplicates_dropped == 4
        assert client.position(ROOM) == Position("e1", 5)


async def test_expired_history_tells_the_app_and_invalidates_the_room() -> None:
    script, gate = Script(), Gate()
    cache: dict[tuple[str, ...], str] = {("users", "1"): "x", ("orders",): "y"}
    async with running(script, sleep=gate.sleep) as (client, seen):
        invalidator = Invalidator(cache)
        client.on_recovery(invalidator.on_recovery)
        room_outcomes: list[Recovery] = []
        client.room(ROOM).on_recovery(room_outcomes.append)
        first = await script.connections.get()
        await publish(first, script, 1)
        await seen.count(1)
        await first.ws.close(CloseCode.SLOW_CONSUMER, "slow")
        await publish_offline(script, 2, 3, 4)
        script.first = 4  # 2 and 3 expired: the gap cannot be filled
        gate.open()
        second = await script.connections.get()
        await publish(second, script, 5)
        events = await seen.count(3)
        assert events == [1, Recovery(ROOM, False, Reason.NOT_RECOVERED, 0, Position("e1", 4)),
                          5]
        assert client.room(ROOM).recovered is False
        assert room_outcomes == [events[1]]
        assert cache == {("orders",): "y"}


async def test_new_epoch_seen_live_is_not_recovered() -> None:
    script = Script()
    async with running(script) as (_, seen):
        conn = await script.connections.get()
        await publish(conn, script, 1, 2)
        script.epoch, script.log = "e2", []  # the server lost the stream
        await publish(conn, script, 3)
        events = await seen.count(4)
        assert events == [1, 2, 3, Recovery(ROOM, False, Reason.EPOCH_CHANGED, 0,
                                            Position("e2", 1))]


async def test_recover_off_reconnects_plainly() -> None:
    script, gate = Script(), Gate()
    async with running(script, sleep=gate.sleep, recover=False) as (client, seen):
        first = await script.connections.get()
        await publish(first, script, 1)
        await seen.count(1)
        await first.ws.close(CloseCode.GOING_AWAY, "restart")
        gate.open()
        second = await script.connections.get()
        assert "recover" not in second.query
        events = await seen.count(2)
        assert events[1] == Recovery(ROOM, False, Reason.NO_POSITION, 0, Position("e1", 1))
        await client.ping()
        assert [f["data"]["action"] for f in second.frames] == ["ping"]


async def test_positions_of_a_previous_process_recover_the_first_connection() -> None:
    script = Script()
    for n in (1, 2, 3):
        script.append(n)
    async with running(script, positions={ROOM: Position("e1", 1)}) as (client, seen):
        conn = await script.connections.get()
        assert conn.query["recover"] == ["1"]
        events = await seen.count(3)
        assert events == [Recovery(ROOM, True, Reason.RECOVERED, 2, Position("e1", 1)), 2, 3]
        assert client.positions == {ROOM: Position("e1", 3)}
