"""Read-only admin endpoints: connections, rooms and group memberships, cluster-wide.

Every listing goes through the node's :class:`~roomcast.registry.base.Registry`,
so with Redis it shows the connections of every instance (compat.md flaw not
copied: the Go gateway listed only its own).
"""

from __future__ import annotations

from aiohttp import web

from roomcast.server.admin.bodies import ID_RE, ROOM_RE, ConnectionsQuery, RoomsQuery
from roomcast.server.admin.guard import Caller
from roomcast.server.admin.problems import Problem, json_response, path_id, read_query
from roomcast.server.state import gateway
from roomcast.types import UserId

MAX_CONN_ID = 128


def connection_id(request: web.Request) -> str:
    """The ``{connection_id}`` of the path; ids are opaque, so only the length is checked."""
    value = request.match_info["connection_id"]
    if len(value) > MAX_CONN_ID:
        raise Problem(422, "invalid_path", f"connection_id: longer than {MAX_CONN_ID} characters",
                      details=[{"field": "path.connection_id",
                                "message": f"at most {MAX_CONN_ID} characters"}])
    return value


def room_id(request: web.Request) -> str:
    return path_id(request, "room_id", ROOM_RE, "room id (user:ID or group:ID)")


def user_id(request: web.Request) -> str:
    return path_id(request, "user_id", ID_RE, "user id")


def group_id(request: web.Request) -> str:
    return path_id(request, "group_id", ID_RE, "group id")


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
