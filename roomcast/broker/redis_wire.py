"""The Redis pub/sub wire format shared with the Go gateway: pure, no I/O.

docs/protocol.md specifies it. A publication goes to one of four channels and looks like
``{"server_id": "<uuid>", "message": <envelope>, "timestamp": "<RFC 3339>"}``:

- ``websocket:messages``: to everyone, or to one connection when the envelope has ``to``;
- ``websocket:rooms``: to the members of the envelope's ``room``;
- ``websocket:users``: to the connections of the envelope's ``data.user_id``;
- ``websocket:system``: to everyone.

roomcast adds, without disturbing Go instances (they ignore unknown fields and
channels): a top-level ``"exclude"`` connection id on room publications, the
``roomcast:control`` channel for control commands, and (sharded mode only)
per-room channels ``roomcast:room:{room}``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Final

import orjson
from pydantic import TypeAdapter, ValidationError

from roomcast.broker.base import (
    ControlCommand,
    Disconnect,
    MembershipChanged,
    PresenceChanged,
    RoomsChanged,
    Target,
    ToAll,
    ToConnection,
    TokenRefreshed,
    ToRoom,
    ToUser,
)
from roomcast.protocol.messages import now_rfc3339
from roomcast.types import ConnId, RoomId, UserId

MESSAGES: Final = "websocket:messages"
ROOMS: Final = "websocket:rooms"
USERS: Final = "websocket:users"
SYSTEM: Final = "websocket:system"
CONTROL: Final = "roomcast:control"
ROOM_PREFIX: Final = "roomcast:room:"
#: What every instance subscribes to, in both modes.
CHANNELS: Final = (MESSAGES, ROOMS, USERS, SYSTEM, CONTROL)

_CONTROL_KINDS: Final[dict[str, TypeAdapter[Any]]] = {
    "membership_changed": TypeAdapter(MembershipChanged),
    "disconnect": TypeAdapter(Disconnect),
    "presence_changed": TypeAdapter(PresenceChanged),
    "token_refreshed": TypeAdapter(TokenRefreshed),
    "rooms_changed": TypeAdapter(RoomsChanged),
}
_KIND_OF: Final = {
    MembershipChanged: "membership_changed",
    Disconnect: "disconnect",
    PresenceChanged: "presence_changed",
    TokenRefreshed: "token_refreshed",
    RoomsChanged: "rooms_changed",
}
_FIELDS_OF: Final = {cls: tuple(f.name for f in dataclasses.fields(cls)) for cls in _KIND_OF}


class MalformedPayload(ValueError):
    """A pub/sub message roomcast cannot use; the listener logs and drops it."""


@dataclass(frozen=True, slots=True)
class Incoming:
    """A publication received from another instance."""

    server_id: str
    target: Target
    #: The envelope, encoded once, ready to fan out.
    envelope: bytes
    #: The envelope's ``id`` (None when it has no non-empty string id): with
    #: ``server_id`` it names the publication, so a second copy can be dropped.
    message_id: str | None = None


#: Hash tag of the channels that are not a room's, on a Redis Cluster.
SHARD_GLOBAL: Final = "{roomcast-bus}:"
_SHARD_ROOM: Final = ("roomcast:{", "}:room")


def shard_channel(channel: str) -> str:
    """The sharded channel carrying ``channel`` on a Redis Cluster."""
    if channel.startswith(ROOM_PREFIX):
        head, tail = _SHARD_ROOM
        return head + channel.removeprefix(ROOM_PREFIX) + tail
    return SHARD_GLOBAL + channel


def unshard_channel(shard: str) -> str:
    """The channel that :func:`shard_channel` renamed to ``shard`` (parsed as usual)."""
    if shard.startswith(SHARD_GLOBAL):
        return shard.removeprefix(SHARD_GLOBAL)
    head, tail = _SHARD_ROOM
    if shard.startswith(head) and shard.endswith(tail) and len(shard) > len(head + tail):
        return ROOM_PREFIX + shard[len(head):-len(tail)]
    return shard


def room_channel(room: str) -> str:
    """The per-room channel of sharded mode."""
    return ROOM_PREFIX + room


def payload_prefix(server_id: str) -> bytes:
    """The constant start of every payload this instance publishes.

    The listener drops its own echoes by this prefix, before decoding anything.
    """
    return b'{"server_id":' + orjson.dumps(server_id) + b',"message":'


def wrap(prefix: bytes, envelope: bytes, exclude: str | None = None) -> bytes:
    """A compat payload around already-encoded envelope bytes (no re-encoding)."""
    tail = b',"timestamp":' + orjson.dumps(now_rfc3339())
    if exclude is not None:
        tail += b',"exclude":' + orjson.dumps(exclude)
    return prefix + envelope + tail + b"}"


def outgoing(target: Target, payload: bytes, *, sharded: bool = False) -> tuple[str, bytes]:
    """The channel and envelope bytes that carry ``payload`` to ``target`` elsewhere.

    Other instances route by envelope fields (as Go instances do), so the envelope must
    name the target: a missing ``to``, ``room`` or ``data.user_id`` is filled in
    (the only case that re-encodes), and one naming someone else is refused,
    as it would reach the wrong recipients on other instances.

    Raises:
        ValueError: the payload is not a JSON object, or names another recipient.
    """
    try:
        env = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"payload is not JSON: {exc}") from None
    if not isinstance(env, dict):
        raise ValueError("payload must be a JSON object")
    if isinstance(target, ToAll):
        if env.get("to") is not None:
            raise ValueError("a ToAll payload must not carry 'to'")
        return MESSAGES, payload
    if isinstance(target, ToConnection):
        return MESSAGES, _ensure(env, payload, env, "to", target.conn_id)
    if isinstance(target, ToRoom):
        channel = room_channel(target.room) if sharded else ROOMS
        return channel, _ensure(env, payload, env, "room", target.room)
    data = env.get("data")
    if data is None:
        data = env["data"] = {}
    if not isinstance(data, dict):
        raise ValueError("a ToUser payload needs 'data' to be an object")
    return USERS, _ensure(env, payload, data, "user_id", target.user_id)


def _ensure(env: dict[str, Any], payload: bytes, where: dict[str, Any], key: str,
            value: str) -> bytes:
    present = where.get(key)
    if present == value:
        return payload
    if present is not None:
        raise ValueError(f"payload {key!r} is {present!r}, not the target {value!r}")
    where[key] = value
    return orjson.dumps(env)


def parse(channel: str, data: bytes) -> Incoming:
    """Decode a publication from ``channel``, Go's or roomcast's.

    Extra fields are ignored; ``timestamp`` may be RFC 3339 (any precision) or
    Unix milliseconds, and is not needed for delivery.

    Raises:
        MalformedPayload: not a compat payload, or no recipient can be derived.
    """
    obj = _object(data)
    server_id = obj.get("server_id")
    message = obj.get("message")
    if not isinstance(server_id, str):
        raise MalformedPayload("server_id missing or not a string")
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise MalformedPayload("message missing, not an object, or without a string type")
    target = _target(channel, message, obj.get("exclude"))
    message_id = message.get("id")
    if not isinstance(message_id, str) or not message_id:
        message_id = None
    return Incoming(server_id, target, orjson.dumps(message), message_id)


def _target(channel: str, message: dict[str, Any], exclude: Any) -> Target:
    if channel == MESSAGES:
        to = message.get("to")
        if to is None:
            return ToAll()
        return ToConnection(ConnId(_name(to, "to")))
    if channel == SYSTEM:
        return ToAll()
    if channel == USERS:
        data = message.get("data")
        user_id = data.get("user_id") if isinstance(data, dict) else None
        return ToUser(UserId(_name(user_id, "data.user_id")))
    if channel == ROOMS or channel.startswith(ROOM_PREFIX):
        room = _name(message.get("room"), "room")
        if channel != ROOMS and channel != room_channel(room):
            raise MalformedPayload(f"room {room!r} published on {channel!r}")
        excluded = ConnId(exclude) if isinstance(exclude, str) else None
        return ToRoom(RoomId(room), exclude=excluded)
    raise MalformedPayload(f"unexpected channel {channel!r}")


def _name(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise MalformedPayload(f"{field} missing or not a non-empty string")
    return value


def _object(data: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise MalformedPayload(f"invalid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise MalformedPayload("payload is not a JSON object")
    return obj


def encode_control(prefix: bytes, command: ControlCommand) -> bytes:
    """``{"server_id", "kind", ...fields}`` for the control channel."""
    # Shallow: orjson writes nested dataclasses and tuples itself, and asdict's deep
    # copy was a tenth of a Redis instance's connect storm (a presence change each).
    fields = {name: getattr(command, name) for name in _FIELDS_OF[type(command)]}
    body = orjson.dumps({"kind": _KIND_OF[type(command)], **fields})
    # prefix ends with '"message":'; control payloads carry the command there.
    return prefix + body + b"}"


def parse_control(data: bytes) -> tuple[str, ControlCommand]:
    """The sender's server_id and the command of a control payload.

    Raises:
        MalformedPayload: unknown kind or invalid fields.
    """
    obj = _object(data)
    server_id, body = obj.get("server_id"), obj.get("message")
    if not isinstance(server_id, str) or not isinstance(body, dict):
        raise MalformedPayload("control payload needs server_id and message")
    kind = body.pop("kind", None)
    adapter = _CONTROL_KINDS.get(kind) if isinstance(kind, str) else None
    if adapter is None:
        raise MalformedPayload("unknown control kind")
    try:
        command: ControlCommand = adapter.validate_python(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        raise MalformedPayload(f"invalid control command: {first['msg']}") from None
    return server_id, command
