"""Admin endpoints that act: send messages, profile events, memberships, kicks.

Everything goes through the node and its broker, so it reaches the connections
of every instance (a Go gateway flaw not copied: the Go gateway delivered only to
the instance that received the HTTP call).
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from roomcast.broker.base import Disconnect, Target, ToAll, ToConnection, ToRoom, ToUser
from roomcast.exceptions import BrokerError
from roomcast.logs import log_event
from roomcast.protocol import messages
from roomcast.protocol.codes import CloseCode
from roomcast.server.admin.bodies import MembershipBody, MessageBody, ProfileBody
from roomcast.server.admin.guard import Caller
from roomcast.server.admin.inputs import connection_id, group_id, read_body, room_id, user_id
from roomcast.server.admin.problems import Problem, json_response
from roomcast.server.state import gateway
from roomcast.types import ConnId, GroupId, RoomId, UserId

_log = logging.getLogger("roomcast.admin")


async def _message_body(request: web.Request) -> MessageBody:
    return await read_body(request, MessageBody, limit=gateway(request).settings.max_message_size)


async def _publish(request: web.Request, caller: Caller, target: Target,
                   envelope: dict[str, Any]) -> web.Response:
    """Publish an envelope and answer the Go gateway's ``{success, message_id, ...}``."""
    node = gateway(request).node
    count = await node.registry.count(target)
    try:
        await node.publish(target, envelope)
    except BrokerError as exc:
        raise Problem(503, "unavailable",
                      f"not delivered to the other instances ({exc}); "
                      "connections on this instance may have received it") from None
    log_event(_log, "admin_publish", by=caller.name, type=envelope["type"],
              target=type(target).__name__, recipients=count, message_id=envelope["id"])
    return json_response({
        "success": True,
        "message_id": envelope["id"],
        "recipients_count": count,
        "timestamp": envelope["timestamp"],
        "message": envelope,
    })


async def broadcast(request: web.Request, caller: Caller) -> web.Response:
    body = await _message_body(request)
    return await _publish(request, caller, ToAll(), messages.envelope(body.type, body.data))


async def message_connection(request: web.Request, caller: Caller) -> web.Response:
    conn_id = connection_id(request)
    body = await _message_body(request)
    info = await gateway(request).node.registry.connection(conn_id)
    if info is None:
        raise Problem(404, "not_found", f"no connection {conn_id[:80]!r}")
    # As in the Go gateway, ``to`` makes it a direct message on websocket:messages.
    envelope = messages.envelope(body.type, body.data, to=info.id)
    return await _publish(request, caller, ToConnection(ConnId(info.id)), envelope)


async def message_user(request: web.Request, caller: Caller) -> web.Response:
    user = user_id(request)
    body = await _message_body(request)
    data = dict(body.data or {})
    # Other instances route user messages by data.user_id; a different one would
    # reach this user here and another user on the other instances.
    if data.setdefault("user_id", user) != user:
        raise Problem(422, "invalid_body",
                      "data.user_id must be absent or equal the user in the path",
                      details=[{"field": "data.user_id", "message": f"must equal {user!r}"}])
    return await _publish(request, caller, ToUser(UserId(user)),
                          messages.envelope(body.type, data))


async def message_room(request: web.Request, caller: Caller) -> web.Response:
    """A room with no member right now is not an error: ``recipients_count`` is 0."""
    room = room_id(request)
    body = await _message_body(request)
    return await _publish(request, caller, ToRoom(RoomId(room)),
                          messages.envelope(body.type, body.data, room=room))


async def profile(request: web.Request, caller: Caller) -> web.Response:
    user = user_id(request)
    body = await read_body(request, ProfileBody, limit=gateway(request).settings.max_message_size)
    envelope = messages.user_profile_update(user, body.character_id, body.profile)
    return await _publish(request, caller, ToUser(UserId(user)), envelope)


async def _membership(request: web.Request, caller: Caller, *, joined: bool,
                      name: str | None) -> web.Response:
    user, group = user_id(request), group_id(request)
    node = gateway(request).node
    try:
        changed = await node.change_membership(UserId(user), GroupId(group), name, joined)
    except BrokerError as exc:
        raise Problem(503, "unavailable",
                      f"membership stored, but live connections on other instances were not "
                      f"moved ({exc}); they get it when they reconnect") from None
    if changed:
        log_event(_log, "admin_membership", by=caller.name, user=user, group=group, joined=joined)
    return json_response({"changed": changed, "user_id": user, "group_id": group,
                          "group_name": name, "joined": joined})


async def add_membership(request: web.Request, caller: Caller) -> web.Response:
    """Without a name, an existing membership keeps its name (a repeat changes nothing)."""
    user, group = user_id(request), group_id(request)  # 422 for a bad path before the body
    body = await read_body(request, MembershipBody, limit=4096, required=False)
    if body.name is None:
        current = {g.id: g for g in await gateway(request).node.store.groups_of(UserId(user))}
        if group in current:
            return json_response({"changed": False, "user_id": user, "group_id": group,
                                  "group_name": current[GroupId(group)].name, "joined": True})
    return await _membership(request, caller, joined=True, name=body.name or group)


async def remove_membership(request: web.Request, caller: Caller) -> web.Response:
    return await _membership(request, caller, joined=False, name=None)


async def disconnect(request: web.Request, caller: Caller) -> web.Response:
    """Close a connection with 3500 (kicked: clients do not reconnect on their own)."""
    conn_id = connection_id(request)
    node = gateway(request).node
    info = await node.registry.connection(conn_id)
    if info is None:
        raise Problem(404, "not_found", f"no connection {conn_id[:80]!r}")
    command = Disconnect(conn_id=ConnId(info.id), code=CloseCode.KICKED,
                         reason="disconnected by administrator")
    try:
        await node.broker.publish_control(command)
    except BrokerError as exc:
        raise Problem(503, "unavailable", f"could not reach the other instances ({exc})") from None
    log_event(_log, "admin_disconnect", by=caller.name, conn=info.id, user=info.user_id)
    return json_response({"success": True, "connection_id": info.id})
