"""``GET /websocket/admin/live``: the admin dashboard's figures, pushed; and a room's tail.

Administrators (admin token or cookie) and app backends (``X-API-Key``) only; a cookie
from another site's page is refused by its Origin, as on the client endpoint.

Server → viewer (JSON text frames):

- ``{"type": "snapshot", "server_id", "interval", "window", "series": {server: [[t, conns,
  msgs/s, deliveries/s], ...]}, "totals"}`` once at the start;
- ``{"type": "tick", "samples": {server: [t, conns, msgs/s, deliveries/s]}, "totals"}``
  every interval; ``totals`` are ``{connections, rooms, users_online, healthy}``,
  cluster-wide;
- ``{"type": "tail", "room", "message": {id, type, from, timestamp, size, data?}}`` for
  each publication to the tailed room seen by this instance (``data`` for
  administrators only, not for API keys), ``{"type": "tail_dropped", "count"}`` when
  the viewer could not keep up.

Viewer → server: ``{"action": "tail", "room": R}``, ``{"action": "untail"}``; answered
with ``{"type": "tailing", "room": R | null}`` or ``{"type": "error", "message"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from roomcast.auth import origin_allowed
from roomcast.broker.base import Target, ToRoom
from roomcast.exceptions import BrokerError
from roomcast.logs import log_event
from roomcast.node import Node
from roomcast.protocol.envelope import MAX_ROOM_LENGTH
from roomcast.server.admin.guard import Caller, authorize
from roomcast.server.admin.problems import Problem
from roomcast.server.state import GATEWAY, gateway
from roomcast.server.websocket import own_origin
from roomcast.stats import Counters, StatsSampler
from roomcast.supervisor import supervise
from roomcast.types import RoomId

_log = logging.getLogger("roomcast.admin.live")

PATH = "/websocket/admin/live"
#: Tail frames queued for one viewer before the excess is dropped (and counted).
TAIL_QUEUE = 500


class _Viewer:
    def __init__(self, ws: web.WebSocketResponse, caller: Caller) -> None:
        self.ws = ws
        self.bodies = caller.kind == "token"  # message bodies for administrators only
        self.room: RoomId | None = None
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(TAIL_QUEUE)
        self.dropped = 0

    def offer(self, frame: bytes) -> None:
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.dropped += 1


class LiveView:
    """The sampler, the connected viewers and the tap on the node's publications."""

    def __init__(self, node: Node, sampler: StatsSampler) -> None:
        self.node = node
        self.sampler = sampler
        self.viewers: set[_Viewer] = set()
        self._ticker: asyncio.Task[None] | None = None
        node.tap = self._tap

    async def start(self) -> None:
        await self.sampler.start()
        self._ticker = supervise("admin-live", self._tick)

    async def close(self) -> None:
        self.node.tap = None
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        await self.sampler.close()

    async def totals(self) -> dict[str, Any]:
        node = self.node
        try:
            connections, rooms = await node.registry.totals()
        except BrokerError:
            connections, rooms = len(node.hub.connections), len(node.hub.rooms)
        try:
            users = (await node.presence.store.presence_stats()).users
        except BrokerError:
            users = len(node.hub.users)
        return {"connections": connections, "rooms": rooms, "users_online": users,
                "healthy": node.broker.healthy}

    async def snapshot(self) -> bytes:
        return orjson.dumps({
            "type": "snapshot",
            "server_id": self.node.server_id,
            "interval": self.sampler.interval,
            "window": 900,
            "series": await self.sampler.series(),
            "totals": await self.totals(),
        })

    async def _tick(self) -> None:
        while True:
            await self.sampler.wait_tick()
            if not self.viewers:
                continue
            try:
                frame = orjson.dumps({
                    "type": "tick",
                    "samples": await self.sampler.latest(),
                    "totals": await self.totals(),
                })
            except Exception:
                log_event(_log, "live_tick_failed", logging.ERROR, exc_info=True)
                continue
            for viewer in list(self.viewers):
                viewer.offer(frame)

    def _tap(self, target: Target, payload: bytes) -> None:
        """Called for every publication this instance handles (synchronously)."""
        if not self.viewers or not isinstance(target, ToRoom):
            return
        tailing = [v for v in self.viewers if v.room == target.room]
        if not tailing:
            return
        try:
            env = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        summary = {k: env.get(k) for k in ("id", "type", "from", "timestamp")}
        summary["size"] = len(payload)
        plain = orjson.dumps({"type": "tail", "room": target.room, "message": summary})
        full = orjson.dumps({"type": "tail", "room": target.room,
                             "message": {**summary, "data": env.get("data")}})
        for viewer in tailing:
            viewer.offer(full if viewer.bodies else plain)

    async def tail(self, viewer: _Viewer, room: RoomId | None) -> None:
        old, viewer.room = viewer.room, room
        if room is not None:
            # Sharded mode: receive the room's channel while someone tails it.
            await self.node.broker.subscribe_room(room)
        if old is not None and old != room and old not in self.node.hub.rooms and not any(
            v.room == old for v in self.viewers
        ):
            await self.node.broker.unsubscribe_room(old)


LIVE = web.AppKey("live", LiveView)


async def live_endpoint(request: web.Request) -> web.StreamResponse:
    gw = gateway(request)
    try:
        caller = await authorize(request, gw.settings, gw.verifier)
        origin = request.headers.get("Origin")
        if caller.by_cookie and not origin_allowed(
            origin, gw.settings.allowed_origins, own_origin(request)
        ):
            raise Problem(403, "forbidden", "origin not allowed", reason="origin")
    except Problem as problem:
        return problem.response()
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=4096, compress=False)
    if not ws.can_prepare(request).ok:
        return Problem(426, "upgrade_required", "expected a WebSocket upgrade").response()
    await ws.prepare(request)
    live = request.app[LIVE]
    viewer = _Viewer(ws, caller)
    log_event(_log, "live_viewer", caller=caller.name)
    try:
        await ws.send_str((await live.snapshot()).decode())
    except ConnectionError:
        return ws  # gone before its first frame
    live.viewers.add(viewer)
    writer = asyncio.create_task(_write(viewer))
    try:
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                await ws.send_str(orjson.dumps(await _command(live, viewer, msg.data)).decode())
    except ConnectionError:
        pass  # the viewer left while we wrote to it
    finally:
        live.viewers.discard(viewer)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        with contextlib.suppress(BrokerError):
            await live.tail(viewer, None)
        log_event(_log, "live_viewer_left", caller=caller.name)
    return ws


async def _command(live: LiveView, viewer: _Viewer, raw: str) -> dict[str, Any]:
    try:
        cmd = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {"type": "error", "message": "invalid JSON"}
    action = cmd.get("action") if isinstance(cmd, dict) else None
    if action == "untail":
        await live.tail(viewer, None)
        return {"type": "tailing", "room": None}
    if action == "tail":
        room = cmd.get("room")
        if not isinstance(room, str) or not 0 < len(room) <= MAX_ROOM_LENGTH:
            return {"type": "error", "message": "tail needs a room (string)"}
        await live.tail(viewer, RoomId(room))
        return {"type": "tailing", "room": room}
    return {"type": "error", "message": "action must be tail or untail"}


async def _write(viewer: _Viewer) -> None:
    """Sends the viewer's queued frames in order (ticks and tail alike), until it is gone."""
    with contextlib.suppress(ConnectionError):  # a viewer that left is no error of ours
        while True:
            frame = await viewer.queue.get()
            if viewer.dropped:
                count, viewer.dropped = viewer.dropped, 0
                note = {"type": "tail_dropped", "count": count}
                await viewer.ws.send_str(orjson.dumps(note).decode())
            await viewer.ws.send_str(frame.decode())


async def _lifecycle(app: web.Application) -> Any:
    gw = app[GATEWAY]
    node = gw.node

    def read() -> Counters:
        return Counters(len(node.hub.connections), node.messages_published, node.deliveries)

    live = LiveView(node, StatsSampler(node.server_id, read, redis_url=gw.settings.redis_url,
                                       cluster=gw.settings.redis_cluster))
    app[LIVE] = live
    await live.start()
    yield
    await live.close()


def add_routes(app: web.Application) -> None:
    app.router.add_get(PATH, live_endpoint)
    app.cleanup_ctx.append(_lifecycle)
