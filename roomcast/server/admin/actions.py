"""Admin endpoints that act: send messages, profile events, memberships, kicks.

Everything goes through the node and its broker, so it reaches the connections
of every instance (a Go gateway flaw not copied: the Go gateway delivered only to
the instance that received the HTTP call).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiohttp import web

from roomcast.broker.base import Disconnect, Target, ToAll, ToConnection, ToRoom, ToUser
from roomcast.exceptions import BrokerError, DeliveryUnknown
from roomcast.logs import log_event
from roomcast.node import Node
from roomcast.protocol import messages
from roomcast.protocol.codes import CloseCode
from roomcast.server.admin.bodies import (
    DisconnectBody,
    DisconnectQuery,
    MembershipBody,
    MessageBody,
    ProfileBody,
)
from roomcast.server.admin.guard import Caller
from roomcast.server.admin.inputs import (
    connection_id,
    group_id,
    read_body,
    read_query,
    room_id,
    user_id,
)
from roomcast.server.admin.problems import Problem, json_response
from roomcast.server.state import gateway
from roomcast.types import ConnId, GroupId, RoomId, UserId

_log = logging.getLogger("roomcast.admin")


async def _message_body(request: web.Request) -> MessageBody:
    return await read_body(request, MessageBody, limit=gateway(request).settings.max_message_size)


#: Go's status sentences of the send routes.
_SENT = {
    ToAll: "Message broadcast successfully",
    ToConnection: "Message sent to connection successfully",
    ToUser: "Message sent to user successfully",
    ToRoom: "Message sent to room successfully",
}
_STORED = "No connection right now; the message was stored for later delivery"


def stored_position(result: object, target: Target) -> dict[str, Any] | None:
    """Where the broker kept a publication in its room's history, if it did.

    The one place that reads history positions off a publish result: a plain
    int (local recipients) means no history.
    """
    position = getattr(result, "position", None)
    if position is None or not isinstance(target, ToRoom | ToUser):
        return None
    room = target.room if isinstance(target, ToRoom) else f"user:{target.user_id}"
    return {"room": room, "epoch": str(position.epoch), "offset": int(position.offset)}


async def _publish(request: web.Request, caller: Caller, target: Target,
                   envelope: dict[str, Any], *, echo: dict[str, str] | None = None,
                   missing: str | None = None) -> web.Response:
    """Publish an envelope and answer the Go gateway's ``{success, message_id, ...}``.

    ``missing`` is the 404 sentence for a target with no connection anywhere in the
    cluster, as the Go gateway answers; the message is sent anyway, so a history
    room keeps it.
    """
    node = gateway(request).node
    count = await node.registry.count(target)
    try:
        result = await node.publish(target, envelope)
    except DeliveryUnknown as exc:
        log_event(_log, "admin_publish_unconfirmed", logging.WARNING, error=str(exc),
                  message_id=envelope["id"])
        # Not 503: a retry would be a second message, and the first may have arrived.
        raise Problem(504, "delivery_unknown",
                      f"message {envelope['id']} was handed to Redis, which did not confirm "
                      "it in time: the other instances may or may not have received it "
                      "(each at most once; it is not sent again); connections on this "
                      "instance received it") from None
    except BrokerError as exc:
        log_event(_log, "admin_publish_failed", logging.WARNING, error=str(exc))
        raise Problem(503, "unavailable",
                      "not delivered to the other instances (Redis is unavailable); "
                      "connections on this instance may have received it",
                      headers={"Retry-After": "1"}) from None
    stored = stored_position(result, target)
    # Per message, so at debug: formatting it cost as much as the rest of the request
    # (changes of state, memberships and kicks, stay at info).
    log_event(_log, "admin_publish", logging.DEBUG, by=caller.name, type=envelope["type"],
              target=type(target).__name__, recipients=count, message_id=envelope["id"],
              stored=stored is not None)
    if count == 0 and missing is not None and stored is None:
        raise Problem(404, "not_found", missing)
    # Where Go would answer 404, a stored message is accepted for later delivery: 202.
    later = count == 0 and missing is not None and stored is not None
    body: dict[str, Any] = {
        "success": True,
        "message_id": envelope["id"],
        "timestamp": envelope["timestamp"],
        "message": _STORED if later else _SENT[type(target)],
        **(echo or {}),
        # As the clients receive it: a stored one carries its offset and epoch.
        "envelope": envelope if stored is None else {
            **envelope, "offset": stored["offset"], "epoch": stored["epoch"]},
    }
    if count:  # Go: omitempty
        body["recipients_count"] = count
    if stored is not None:
        body["stored"] = stored
    return json_response(body, status=202 if later else 200)


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
    return await _publish(request, caller, ToConnection(ConnId(info.id)), envelope,
                          echo={"connection_id": info.id})


async def message_user(request: web.Request, caller: Caller) -> web.Response:
    user = user_id(request)
    body = await _message_body(request)
    data = dict(body.data or {})
    # Other instances route user messages by data.user_id; a different one would
    # reach this user here and another user on the other instances.
    if data.setdefault("user_id", user) != user:
        raise Problem(422, "invalid_body",
                      "data.user_id must be absent or equal the user in the path",
                      details=[{"field": "body.data.user_id", "message": f"must equal {user!r}"}])
    return await _publish(request, caller, ToUser(UserId(user)),
                          messages.envelope(body.type, data), echo={"user_id": user},
                          missing=f"user {user!r} has no connection")


async def message_room(request: web.Request, caller: Caller) -> web.Response:
    room = room_id(request)
    body = await _message_body(request)
    return await _publish(request, caller, ToRoom(RoomId(room)),
                          messages.envelope(body.type, body.data, room=room),
                          echo={"room_id": room}, missing=f"room {room!r} has no connection")


async def profile(request: web.Request, caller: Caller) -> web.Response:
    user = user_id(request)
    body = await read_body(request, ProfileBody, limit=gateway(request).settings.max_message_size)
    envelope = messages.user_profile_update(user, body.character_id, body.profile)
    return await _publish(request, caller, ToUser(UserId(user)), envelope, echo={"user_id": user})


async def _membership(request: web.Request, caller: Caller, *, joined: bool,
                      name: str | None) -> web.Response:
    user, group = user_id(request), group_id(request)
    node = gateway(request).node
    try:
        changed = await node.change_membership(UserId(user), GroupId(group), name, joined)
    except BrokerError as exc:
        log_event(_log, "admin_membership_publish_failed", logging.WARNING, error=str(exc))
        raise Problem(503, "unavailable",
                      "membership stored, but live connections on other instances were not "
                      "moved (Redis is unavailable); they get it when they reconnect") from None
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
    """Close a connection with 3500 (kicked: clients do not reconnect on their own), or
    with ``?reconnect=true`` 1001 (clients reconnect after their first backoff delay).

    With ``ban_seconds`` the kick sticks: the connection's token (``ban: token``), or
    every token of its user (``ban: user``, whose connections all close), is refused at
    the handshake until then, cluster-wide (the React client reconnects after any close).
    """
    conn_id = connection_id(request)
    query = read_query(request, DisconnectQuery)
    body = await read_body(request, DisconnectBody, limit=4096, required=False)
    gw = gateway(request)
    node = gw.node
    info = await node.registry.connection(conn_id)
    if info is None:
        raise Problem(404, "not_found", f"no connection {conn_id[:80]!r}")
    if query.reconnect and body.ban_seconds is not None:
        raise Problem(422, "invalid_body", "ban_seconds cannot go with reconnect=true",
                      details=[{"field": "body.ban_seconds",
                                "message": "absent with reconnect=true"}])
    until = time.time() + body.ban_seconds if body.ban_seconds is not None else None
    by_user = until is not None and body.ban == "user"
    if by_user:
        assert until is not None
        await node.denials.ban("user", info.user_id, until)
    if query.reconnect:
        command = Disconnect(conn_id=ConnId(info.id), code=CloseCode.GOING_AWAY,
                             reason="asked to reconnect by administrator")
    else:
        command = Disconnect(
            user_id=UserId(info.user_id) if by_user else None,
            conn_id=None if by_user else ConnId(info.id),
            code=CloseCode.KICKED, reason="disconnected by administrator",
            ban_tokens_until=until if until is not None and not by_user else None,
        )
    await _control(node, command, "admin_disconnect_failed")
    log_event(_log, "admin_disconnect", by=caller.name, conn=info.id, user=info.user_id,
              reconnect=query.reconnect, ban=body.ban if until is not None else None,
              ban_seconds=body.ban_seconds)
    answer: dict[str, Any] = {"success": True, "connection_id": info.id, "user_id": info.user_id}
    if until is not None:
        answer.update(ban=body.ban, banned_until=messages.rfc3339(until))
    return json_response(answer)


async def revoke(request: web.Request, caller: Caller) -> web.Response:
    """Log a user out everywhere: close every connection (3403) and refuse older tokens."""
    user = user_id(request)
    gw = gateway(request)
    node = gw.node
    count = await node.registry.count(ToUser(UserId(user)))
    at = time.time()
    # Stored first: a connection closed by the command must not get back in.
    await node.denials.revoke(user, at, gw.settings.revocation_ttl)
    await _control(node, Disconnect(user_id=UserId(user), code=CloseCode.REVOKED,
                              reason="logged out everywhere"), "admin_revoke_failed")
    log_event(_log, "admin_revoke", by=caller.name, user=user, connections=count)
    return json_response({"success": True, "user_id": user,
                          "revoked_at": messages.rfc3339(at), "connections": count})


async def _control(node: Node, command: Disconnect, failure: str) -> None:
    try:
        await node.broker.publish_control(command)
    except BrokerError as exc:
        log_event(_log, failure, logging.WARNING, error=str(exc))
        raise Problem(503, "unavailable",
                      "could not reach the other instances (Redis is unavailable)") from None
