"""``GET /websocket/rooms/{room_id}/history``: a room's stored publications."""

from __future__ import annotations

import orjson
from aiohttp import web

from roomcast.server.admin.bodies import HistoryQuery
from roomcast.server.admin.guard import Caller
from roomcast.server.admin.inputs import read_query, room_id
from roomcast.server.admin.problems import Problem, json_response
from roomcast.server.state import gateway
from roomcast.types import RoomId


async def room_history(request: web.Request, caller: Caller) -> web.Response:
    room = RoomId(room_id(request))
    query = read_query(request, HistoryQuery)
    found = await gateway(request).node.history.read(
        room, since=query.since, limit=query.limit, reverse=query.reverse
    )
    if found is None:
        raise Problem(404, "not_found", f"room {room!r} keeps no history")
    stale = query.epoch is not None and query.epoch != found.top.epoch
    body = {
        "room": room,
        **found.top.wire(),
        # The stored bytes as they are: no decoding and re-encoding of each envelope.
        "publications": [] if stale else [orjson.Fragment(p.payload) for p in found.publications],
    }
    return json_response(body)
