"""Parse and validate one client frame into a typed command.

The envelope (docs/protocol.md): ``{id?, type, room?, from?, to?, data?, timestamp?}``.
The server overwrites ``from`` and ``timestamp``, so only their types are checked.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from roomcast.exceptions import ProtocolError
from roomcast.history.base import Position
from roomcast.history.recovery import parse_position
from roomcast.protocol.codes import ErrorCode
from roomcast.protocol.lenient import recover_id, replace_lone_surrogates

#: The ten types of the Go gateway; the only types the server API may publish.
SERVER_API_TYPES: Final = (
    "message",
    "user_profile_update",
    "group_membership_change",
    "system_notification",
    "presence",
    "notification",
    "room_update",
    "backend_status",
    "critical_alert",
    "service_recovery",
)
#: Every type the Go gateway or its React client knows.
KNOWN_TYPES: Final = frozenset(
    (*SERVER_API_TYPES, "heartbeat", "custom_event", "room_joined", "room_left", "system", "error")
)
#: Types a client connection may send; the rest are the server's to send.
CLIENT_TYPES: Final = frozenset({"message", "custom_event", "presence", "heartbeat", "system"})

SystemAction = Literal[
    "ping", "join", "leave", "members", "subscribe_presence", "unsubscribe_presence", "refresh",
    "recover", "history",
]
# A tuple, not a set: data.action may be an unhashable list or object.
_SYSTEM_ACTIONS: Final = (
    "ping", "join", "leave", "members", "subscribe_presence", "unsubscribe_presence", "refresh",
    "recover", "history",
)
#: Most rooms one ``recover`` message may name.
MAX_POSITIONS: Final = 1000
#: ``limit`` of a ``history`` request without one.
DEFAULT_HISTORY_LIMIT: Final = 100
_PRESENCE_ACTIONS: Final = ("subscribe_presence", "unsubscribe_presence")
MAX_ID_LENGTH: Final = 128
#: Longest token a ``refresh`` may carry.
MAX_TOKEN_LENGTH: Final = 16384
MAX_ROOM_LENGTH: Final = 256
#: The statuses of the React client's presence hook.
PRESENCE_STATUSES: Final = ("online", "away", "offline")
#: Encoded size limit of the metadata a connection attaches to its presence.
MAX_PRESENCE_METADATA: Final = 2048


class _Envelope(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")

    id: str | None = Field(default=None, max_length=MAX_ID_LENGTH)
    type: str
    room: str | None = Field(default=None, min_length=1, max_length=MAX_ROOM_LENGTH)
    from_: str | None = Field(default=None, alias="from")
    to: str | None = Field(default=None, min_length=1, max_length=MAX_ID_LENGTH)
    data: dict[str, Any] | None = None
    timestamp: str | int | None = None


@dataclass(frozen=True, slots=True)
class Publish:
    """A ``message`` or ``custom_event`` to a room or to one connection."""

    type: str
    id: str | None
    data: dict[str, Any]
    room: str | None = None
    to: str | None = None


@dataclass(frozen=True, slots=True)
class SystemCommand:
    """A ``system`` message: ping, join, leave, a room's members, presence subscriptions,
    a token refresh."""

    type: ClassVar[str] = "system"
    id: str | None
    action: SystemAction
    room: str | None = None
    #: The user of ``subscribe_presence`` / ``unsubscribe_presence``.
    user_id: str | None = None
    #: The new token of ``refresh``.
    token: str | None = None
    #: ``recover``: the client's last position per room.
    positions: dict[str, Position] = field(default_factory=dict)
    #: ``join`` and ``history``: the position to continue after.
    since: Position | None = None
    #: ``history``: how many publications, and newest first or not.
    limit: int = DEFAULT_HISTORY_LIMIT
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class Presence:
    """A ``presence`` message: the sender's status (default online) and metadata."""

    type: ClassVar[str] = "presence"
    id: str | None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return str(self.data.get("status") or "online")

    @property
    def metadata(self) -> dict[str, Any]:
        return self.data.get("metadata") or {}


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A ``heartbeat`` message; the server echoes it."""

    type: ClassVar[str] = "heartbeat"
    id: str | None


ClientCommand = Publish | SystemCommand | Presence | Heartbeat


#: Deepest nesting of a client message (orjson writes at most 254 levels).
MAX_DEPTH = 128


def parse_client_message(frame: str | bytes, *, max_size: int) -> ClientCommand:
    """Parse one text frame from a client.

    Raises:
        ProtocolError: with the wire code of what is wrong, and ``message_id``
            set to the frame's ``id`` whenever one could be read.
    """
    # The limit is in bytes, but aiohttp hands text frames over as str (up to 4 bytes a
    # char); only a str that could be too long in UTF-8 is encoded to find out.
    if len(frame) > max_size or (
        isinstance(frame, str)
        and len(frame) * 4 > max_size
        and len(frame.encode("utf-8", "surrogatepass")) > max_size
    ):
        too_large = ProtocolError(ErrorCode.TOO_LARGE, f"frame exceeds {max_size} bytes")
        # The React client waits 10 s for a reply with its id, so find it.
        too_large.message_id = recover_id(frame)
        raise too_large
    obj = _loads(frame)
    if not isinstance(obj, dict):
        raise ProtocolError(ErrorCode.NOT_AN_OBJECT, "a message must be a JSON object")
    message_id = _message_id(obj)
    if _nesting_possible(frame) and too_deep(obj, MAX_DEPTH):
        # orjson cannot write what is nested 255 deep: refuse it here, not when relaying.
        deep = ProtocolError(ErrorCode.INVALID_FIELD, f"data is nested more than {MAX_DEPTH} deep")
        deep.message_id = message_id
        raise deep
    try:
        return _to_command(obj)
    except ProtocolError as exc:
        exc.message_id = message_id
        raise


def _nesting_possible(frame: str | bytes) -> bool:
    """Whether the frame has enough brackets to be nested too deep (a cheap first look)."""
    if isinstance(frame, bytes):
        return frame.count(b"[") + frame.count(b"{") > MAX_DEPTH
    return frame.count("[") + frame.count("{") > MAX_DEPTH


def too_deep(value: Any, limit: int) -> bool:
    """Whether ``value`` nests arrays/objects more than ``limit`` levels (no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in children
                         if isinstance(child, dict | list))
    return False


def _loads(frame: str | bytes) -> Any:
    """JSON as browsers write it: lone surrogate escapes read as U+FFFD, as Go does."""
    try:
        return orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        error = exc
    # Only a failed frame pays for the second look.
    with contextlib.suppress(UnicodeDecodeError, orjson.JSONDecodeError):
        text = frame.decode() if isinstance(frame, bytes) else frame
        fixed = replace_lone_surrogates(text)
        if fixed is not text:
            return orjson.loads(fixed)
    invalid = ProtocolError(ErrorCode.INVALID_JSON, f"invalid JSON: {error}")
    invalid.message_id = recover_id(frame)
    raise invalid


def _message_id(obj: object) -> str | None:
    """The client's ``id``, when the frame is an object carrying a usable one."""
    raw = obj.get("id") if isinstance(obj, dict) else None
    return raw if isinstance(raw, str) and len(raw) <= MAX_ID_LENGTH else None


def _to_command(obj: dict[str, Any]) -> ClientCommand:
    try:
        env = _Envelope.model_validate(obj)
    except ValidationError as exc:
        raise ProtocolError(ErrorCode.INVALID_FIELD, _describe(exc)) from None
    kind = env.type
    if kind not in KNOWN_TYPES:
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {kind[:64]!r}")
    if kind not in CLIENT_TYPES:
        raise ProtocolError(ErrorCode.FORBIDDEN, f"type {kind!r} is sent by the server only")
    data = env.data or {}
    if kind in ("message", "custom_event"):
        if (env.room is None) == (env.to is None):
            raise ProtocolError(ErrorCode.INVALID_FIELD, f"{kind} needs exactly one of room, to")
        return Publish(type=kind, id=env.id, data=data, room=env.room, to=env.to)
    if kind == "system":
        return _system(env.id, data, env.room)
    if kind == "presence":
        return _presence(env.id, data)
    return Heartbeat(id=env.id)


def _system(message_id: str | None, data: dict[str, Any], room: str | None) -> SystemCommand:
    action = data.get("action")
    if action not in _SYSTEM_ACTIONS:
        raise ProtocolError(
            ErrorCode.INVALID_FIELD,
            "system data.action must be one of " + ", ".join(sorted(_SYSTEM_ACTIONS)),
        )
    # The React client's room hooks put the room in data.room.
    target = data.get("room", room)
    if action == "ping":
        return SystemCommand(id=message_id, action="ping")
    if action == "refresh":
        token = data.get("token")
        if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_LENGTH:
            raise ProtocolError(ErrorCode.INVALID_FIELD, "system refresh needs a token (string)")
        return SystemCommand(id=message_id, action="refresh", token=token)
    if action == "recover":
        return SystemCommand(id=message_id, action="recover",
                             positions=_positions(data.get("positions")))
    if action in _PRESENCE_ACTIONS:
        # The React client's presence hook names the user in data.userId.
        user = data.get("userId", data.get("user_id"))
        if not isinstance(user, str) or not 0 < len(user) <= MAX_ID_LENGTH:
            raise ProtocolError(ErrorCode.INVALID_FIELD, f"system {action} needs a userId (string)")
        return SystemCommand(id=message_id, action=action, user_id=user)
    if not isinstance(target, str) or not 0 < len(target) <= MAX_ROOM_LENGTH:
        raise ProtocolError(ErrorCode.INVALID_FIELD, f"system {action} needs a room (string)")
    if action in ("join", "history"):
        return _stream_command(message_id, action, target, data)
    return SystemCommand(id=message_id, action=action, room=target)


def _stream_command(
    message_id: str | None, action: SystemAction, room: str, data: dict[str, Any]
) -> SystemCommand:
    """``join`` and ``history`` with their optional ``since`` (and ``limit``, ``reverse``)."""
    raw_since = data.get("since")
    since = parse_position(raw_since)
    if raw_since is not None and since is None:
        raise ProtocolError(ErrorCode.INVALID_FIELD,
                            f"system {action} since must be {{epoch: string, offset: int >= 0}}")
    limit, reverse = data.get("limit", DEFAULT_HISTORY_LIMIT), data.get("reverse", False)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise ProtocolError(ErrorCode.INVALID_FIELD, "system history limit must be an int >= 0")
    if not isinstance(reverse, bool):
        raise ProtocolError(ErrorCode.INVALID_FIELD, "system history reverse must be a boolean")
    return SystemCommand(id=message_id, action=action, room=room, since=since, limit=limit,
                         reverse=reverse)


def _positions(raw: object) -> dict[str, Position]:
    """The ``positions`` of a ``recover`` message: room -> {epoch, offset}."""
    if not isinstance(raw, dict) or len(raw) > MAX_POSITIONS:
        raise ProtocolError(ErrorCode.INVALID_FIELD,
                            f"recover positions must be an object of at most {MAX_POSITIONS} rooms")
    out: dict[str, Position] = {}
    for room, value in raw.items():
        position = parse_position(value)
        if not 0 < len(room) <= MAX_ROOM_LENGTH or position is None:
            raise ProtocolError(ErrorCode.INVALID_FIELD,
                                "recover positions map rooms to {epoch: string, offset: int >= 0}")
        out[room] = position
    return out


def _presence(message_id: str | None, data: dict[str, Any]) -> Presence:
    status = data.get("status")
    if status is not None and status not in PRESENCE_STATUSES:
        allowed = ", ".join(PRESENCE_STATUSES)
        raise ProtocolError(ErrorCode.INVALID_FIELD, f"presence status must be one of {allowed}")
    metadata = data.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise ProtocolError(ErrorCode.INVALID_FIELD, "presence metadata must be an object")
        if len(orjson.dumps(metadata)) > MAX_PRESENCE_METADATA:
            raise ProtocolError(
                ErrorCode.INVALID_FIELD, f"presence metadata exceeds {MAX_PRESENCE_METADATA} bytes"
            )
    user = data.get("userId")
    if user is not None and not isinstance(user, str):
        raise ProtocolError(ErrorCode.INVALID_FIELD, "presence userId must be a string")
    return Presence(id=message_id, data=data)


def _describe(exc: ValidationError) -> str:
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "message"
    return f"{where}: {first['msg']}"
