"""Read-only admin endpoints: connections, rooms and group memberships, cluster-wide.

Every listing goes through the node's :class:`~roomcast.registry.base.Registry`,
so with Redis it shows the connections of every instance (a Go gateway flaw
not copied: the Go gateway listed only its own).
"""

from __future__ import annotations

from aiohttp import web

from roomcast.server.admin.bodies import ConnectionsQuery, RoomsQuery
from roomcast.server.admin.guard import Caller
from roomcast.server.admin.inputs import connection_id, read_query, room_id, user_id
from roomcast.server.admin.problems import Problem, json_response
from roomcast.server.state import gateway
from roomcast.types import UserId


async def list_connections(request: web.Request, caller: Caller) -> web.Response:
    query = read_query(request, ConnectionsQuery)
    conns = await gateway(request).node.registry.connections(
        user_id=query.user_id, character_id=query.character_id, room_id=query.room_id
    )
    return json_response({"connections": [c.to_json() for c in conns], "total": len(conns)})


async def get_connection(request: web.Request, caller: Caller) -> web.Response:
    conn_id = connection_id(request)
    info = await gateway(request).node.registry.connection(conn_id)
    if info is None:
        raise Problem(404, "not_found", f"no connection {conn_id[:80]!r}")
    return json_response({"connection": info.to_json()})


async def list_rooms(request: web.Request, caller: Caller) -> web.Response:
    query = read_query(request, RoomsQuery)
    rooms = await gateway(request).node.registry.rooms(type=query.type, member_id=query.member_id)
    return json_response({"rooms": [r.to_json() for r in rooms], "total": len(rooms)})


async def get_room(request: web.Request, caller: Caller) -> web.Response:
    room = room_id(request)
    info = await gateway(request).node.registry.room(room)
    if info is None:
        raise Problem(404, "not_found", f"no room {room!r} (rooms exist while they have members)")
    return json_response({"room": info.to_json()})


async def list_groups(request: web.Request, caller: Caller) -> web.Response:
    """The user's memberships in the store (a token's ``groups`` claim is per connection)."""
    user = user_id(request)
    groups = await gateway(request).node.store.groups_of(UserId(user))
    return json_response({
        "user_id": user,
        "groups": [{"id": g.id, "name": g.name} for g in groups],
        "total": len(groups),
    })
