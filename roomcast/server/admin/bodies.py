"""The admin API's request and response bodies, as pydantic models.

One source for three readers: the handlers validate requests with them, the
OpenAPI spec is generated from them, and :mod:`roomcast.api` parses responses
with them. Request models are strict (JSON types only, no coercion).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, Literal

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from roomcast.protocol.envelope import SERVER_API_TYPES

#: User and group ids: the character rules of the dev login (server/login.py).
ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"
ROOM_PATTERN: Final = r"^(user|group):[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"
ID_RE: Final = re.compile(ID_PATTERN)
ROOM_RE: Final = re.compile(ROOM_PATTERN)
#: Printable text: no C0 control characters or DEL (names end up in UIs and logs).
NAME_PATTERN: Final = r"^[^\x00-\x1f\x7f]{1,64}$"
#: Character ids are EVE-style positive integers; orjson encodes up to 2**64-1.
MAX_CHARACTER_ID: Final = 2**63 - 1


def _encodable(value: dict[str, Any]) -> dict[str, Any]:
    """Refuse what orjson cannot put on the wire (deep nesting), before anything is sent."""
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        raise ValueError(f"cannot be sent as JSON: {exc}") from None
    return value


def _integral(value: Any) -> Any:
    """JSON Schema counts ``7.0`` as an integer; so do we (strict mode would not)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


CharacterId = Annotated[int, Field(ge=0, le=MAX_CHARACTER_ID), BeforeValidator(_integral)]


class _Request(BaseModel):
    # extra="ignore": the Go gateway ignored unknown fields and its backends may send some.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class MessageBody(_Request):
    """``{type, data}`` of the four message endpoints (as in the Go gateway)."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"type": "notification", "data": {"title": "Deploy", "message": "v2 is live"}},
    ]})

    type: str = Field(
        description="One of the ten message types of the Go gateway.",
        json_schema_extra={"enum": list(SERVER_API_TYPES)},
    )
    data: dict[str, Any] = Field(description="Any JSON object (required, as in Go).")

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in SERVER_API_TYPES:
            raise ValueError("must be one of " + ", ".join(SERVER_API_TYPES))
        return value

    @field_validator("data")
    @classmethod
    def _data_encodable(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _encodable(value)


class MembershipBody(_Request):
    """``PUT .../groups/{group_id}``: the group's display name (default: its id)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "Blue team"}]})

    name: str | None = Field(default=None, pattern=NAME_PATTERN,
                             description="Display name; the room is named `Group: {name}`.")


#: Longest sticky kick: 30 days.
MAX_BAN_SECONDS: Final = 30 * 86400


class DisconnectBody(_Request):
    """``POST .../disconnect``: optionally keep the token or the user out for a while."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"ban_seconds": 300, "ban": "token"},
    ]})

    ban_seconds: float | None = Field(
        default=None, gt=0, le=MAX_BAN_SECONDS,
        description="Refuse handshakes this many seconds (403, reason `kicked`, Retry-After): "
        "without it the React client reconnects within a second.")
    ban: Literal["token", "user"] = Field(
        default="token",
        description="`token`: the connection's token; `user`: every token of its user "
        "(and all of the user's connections are closed).")

    @field_validator("ban_seconds", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


class ProfileBody(_Request):
    """``POST .../profile``: sent as ``user_profile_update`` to the user's connections."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"character_id": 90000001, "profile": {"name": "Ada", "corporation": "Analytical"}},
    ]})

    character_id: CharacterId | None = None
    profile: dict[str, Any]

    @field_validator("profile")
    @classmethod
    def _profile_encodable(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _encodable(value)


class ConnectionsQuery(BaseModel):
    """Filters of ``GET /websocket/connections`` (all optional, combined with AND)."""

    model_config = ConfigDict(extra="ignore")

    user_id: str | None = Field(default=None, max_length=128)
    character_id: int | None = Field(default=None, ge=0, le=MAX_CHARACTER_ID)
    room_id: str | None = Field(default=None, max_length=256)


class RoomsQuery(BaseModel):
    """Filters of ``GET /websocket/rooms``; ``member_id`` is a connection or user id.

    As in the Go gateway, a ``type`` other than ``personal`` or ``group`` matches no room (an
    empty list, as the Go gateway answers), not an error.
    """

    model_config = ConfigDict(extra="ignore")

    type: str | None = Field(default=None, max_length=64,
                             description="`personal` or `group`; any other value matches none.",
                             examples=["group"])
    member_id: str | None = Field(default=None, max_length=128)


class DisconnectQuery(BaseModel):
    """How ``POST .../disconnect`` closes the connection."""

    model_config = ConfigDict(extra="ignore")

    reconnect: bool = Field(
        default=False,
        description="`true`: close with 1001 (going away), so the client reconnects at once "
                    "(and recovers what it missed meanwhile), e.g. to move it to another "
                    "instance; `false` (default): 3500, kicked, no automatic reconnect.")


class HistoryQuery(BaseModel):
    """Which part of a room's history: after ``since`` (of ``epoch``), oldest or newest first."""

    model_config = ConfigDict(extra="ignore")

    since: int = Field(default=0, ge=0, description="Publications with a greater offset.")
    epoch: str | None = Field(
        default=None, max_length=64,
        description="The epoch `since` belongs to; another epoch answers no publications "
        "(those offsets mean nothing in the current stream).",
    )
    limit: int = Field(default=100, ge=0, le=1000,
                       description="At most this many (also capped by the room's size).")
    reverse: bool = Field(default=False, description="Newest first.")


# -- responses -------------------------------------------------------------------


def _example(**fields: Any) -> ConfigDict:
    """A model config whose JSON schema carries one example (shown in the docs)."""
    return ConfigDict(json_schema_extra={"examples": [fields]})


_CONN_ID = "7f1d2c9e-3b8a-4c55-9f0e-2a6d1b4c8e71"
_MSG_ID = "0b0e6a51-8b0e-4e0c-9a55-5d9c3f1e2a10"
_SERVER_ID = "b7a0c3d2-5e1f-4a8b-9c6d-0e1f2a3b4c5d"
_TIME = "2026-01-02T03:04:05.678Z"


class Connection(BaseModel):
    """A live connection, on any instance."""

    model_config = _example(id=_CONN_ID, user_id="alice", character_id=90000001,
                            character_name="Ada", rooms=["group:blue", "user:alice"],
                            created_at=_TIME, server_id=_SERVER_ID)

    id: str
    user_id: str
    character_id: int | None
    character_name: str
    rooms: list[str]
    created_at: str = Field(description="RFC 3339")
    server_id: str = Field(description="The instance holding the connection.")


class ConnectionList(BaseModel):
    connections: list[Connection]
    total: int


class ConnectionOne(BaseModel):
    connection: Connection


class Room(BaseModel):
    """A room with at least one member, on any instance."""

    model_config = _example(id="group:blue", type="group", name="Group: Blue team", member_count=3)

    id: str
    type: str = Field(description="`personal` or `group`")
    name: str
    member_count: int


class RoomList(BaseModel):
    rooms: list[Room]
    total: int


class RoomOne(BaseModel):
    room: Room


class Envelope(BaseModel):
    """The message as clients receive it (the wire envelope)."""

    model_config = ConfigDict(populate_by_name=True)

    id: str
    type: str
    room: str | None = None
    from_: str | None = Field(default=None, alias="from")
    to: str | None = None
    data: dict[str, Any]
    timestamp: str
    offset: int | None = Field(default=None, description="Its place in the room's history "
                               "(set when the room keeps history).")
    epoch: str | None = Field(default=None, description="The epoch of that history.")


class StoredEnvelope(Envelope):
    """An envelope kept in a room's history, with its place in the stream."""

    offset: int
    epoch: str


class HistoryPage(BaseModel):
    """Part of a room's history, and where its stream stands."""

    room: str
    epoch: str = Field(description="Changes whenever the stream was lost or recreated.")
    offset: int = Field(description="The offset of the room's latest publication (0: none yet).")
    publications: list[StoredEnvelope]


class Stored(BaseModel):
    """Where a send was kept in its room's history (for clients that reconnect later)."""

    room: str
    epoch: str
    offset: int


class Sent(BaseModel):
    """The Go gateway's answer to the four send routes, plus roomcast's extras.

    ``message`` is a status sentence as in Go; the message itself is ``envelope``.
    """

    model_config = _example(success=True, message_id=_MSG_ID, recipients_count=2, timestamp=_TIME,
                            message="Message sent to user successfully", user_id="alice",
                            envelope={"id": _MSG_ID, "type": "notification",
                                      "data": {"title": "Deploy", "user_id": "alice"},
                                      "timestamp": _TIME})

    success: bool
    message_id: str
    recipients_count: int = Field(
        default=0,
        description="Connections the target reached when it was published, cluster-wide "
        "(left out when 0, as in Go).",
    )
    timestamp: str
    message: str = Field(description="What happened, in words (Go's status message).")
    connection_id: str | None = Field(default=None, description="The target, echoed.")
    user_id: str | None = Field(default=None, description="The target, echoed.")
    room_id: str | None = Field(default=None, description="The target, echoed.")
    envelope: Envelope | None = Field(default=None,
                                      description="The message as the clients receive it.")
    stored: Stored | None = Field(
        default=None, description="Set when the message was kept in the room's history: "
        "connections that reconnect with recovery get it even if none was reached now.",
    )


class Membership(BaseModel):
    """Result of a membership PUT or DELETE; ``changed`` is false for a repeat."""

    model_config = _example(changed=True, user_id="alice", group_id="blue",
                            group_name="Blue team", joined=True)

    changed: bool
    user_id: str
    group_id: str
    group_name: str | None = Field(description="null after a DELETE")
    joined: bool


class Group(BaseModel):
    id: str
    name: str


class GroupList(BaseModel):

    model_config = _example(user_id="alice", groups=[{"id": "blue", "name": "Blue team"}],
                            total=1)
    user_id: str
    groups: list[Group]
    total: int


class Disconnected(BaseModel):

    model_config = _example(success=True, connection_id=_CONN_ID)
    success: bool
    connection_id: str
    user_id: str | None = Field(default=None, description="The connection's user.")
    ban: Literal["token", "user"] | None = Field(
        default=None, description="What is refused at the handshake, with `ban_seconds`.")
    banned_until: str | None = Field(
        default=None, description="RFC 3339 end of the ban, with `ban_seconds`.")


class Revoked(BaseModel):
    """``POST .../revoke``: the user's connections are closed and older tokens refused."""

    model_config = _example(success=True, user_id="alice", revoked_at="2026-12-06T10:00:00Z",
                            connections=2)
    success: bool
    user_id: str
    revoked_at: str = Field(description="RFC 3339; tokens issued (iat) at or before it are "
                            "refused until they expire.")
    connections: int = Field(description="Connections of the user, cluster-wide, closed.")


class RefreshBody(_Request):
    """``POST /websocket/token/refresh``: the caller's connections that take over the token."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"connection_ids": [_CONN_ID]}]})

    connection_ids: list[str] = Field(min_length=1, max_length=32)


class Refreshed(BaseModel):
    """The connections that took over the request's token, and when it expires."""

    model_config = _example(user_id="alice", connection_ids=[_CONN_ID],
                            expires_at="2026-12-06T11:00:00Z")
    user_id: str
    connection_ids: list[str] = Field(description="Those named that are the caller's and open.")
    expires_at: str = Field(description="RFC 3339 expiry of the token they now hold.")


class Stats(BaseModel):
    """The Go gateway's ``WebSocketStats``, for this instance."""

    total_connections: int = Field(description="Connections accepted since start.")
    active_connections: int = Field(description="Connections open now.")
    total_rooms: int = Field(description="Rooms with a member on this instance.")
    messages_processed: int = Field(description="Publications delivered by this instance.")
    messages_broadcast: int = Field(description="Publications sent by this instance.")
    last_connection_time: str = Field(
        description="RFC 3339 time of the latest accepted connection "
        "(Go's zero time 0001-01-01T00:00:00Z before the first)."
    )


class ClusterStats(BaseModel):
    """roomcast's cluster-wide counts (roomcast instances only), at most a second old."""

    connections: int
    rooms: int


class WorkerRow(BaseModel):
    """One worker process of ``serve --workers N``."""

    index: int
    pid: int | None = Field(description="Absent while it is being restarted.")
    alive: bool
    restarts: int = Field(description="Times the supervisor restarted it after it died.")
    last_exit: int | None = Field(description="Exit code of its last death (negative: signal).")
    server_id: str | None = Field(description="Its instance id, once it listens.")


class Workers(BaseModel):
    """The workers sharing this port, as their supervisor last recorded them."""

    count: int
    supervisor_pid: int
    this: int = Field(description="Index of the worker that answered.")
    workers: list[WorkerRow]


class Status(BaseModel):
    """Public health of this instance: the Go gateway's shape, counts only."""

    model_config = _example(module="websocket", status="healthy",
                            stats={"total_connections": 120, "active_connections": 17,
                                   "total_rooms": 9, "messages_processed": 1234,
                                   "messages_broadcast": 56,
                                   "last_connection_time": _TIME},
                            message="WebSocket service is running normally",
                            server_id=_SERVER_ID, cluster={"connections": 42, "rooms": 12},
                            redis_channels=["websocket:messages", "websocket:rooms",
                                            "websocket:users", "websocket:system"])

    module: Literal["websocket"]
    status: Literal["healthy", "unhealthy"]
    stats: Stats
    message: str
    server_id: str
    cluster: ClusterStats | None = Field(
        default=None, description="Absent while the registry cannot be read.")
    redis_channels: list[str]
    reason: str | None = Field(default=None, description="Why it is unhealthy, in general terms "
                               "(the details are in the instance's log).")
    workers: Workers | None = Field(default=None, description="Under `serve --workers N` only.")


class ErrorDetail(BaseModel):
    """huma's ``ErrorDetail``: one offending field."""

    message: str | None = None
    location: str | None = Field(default=None,
                                 description="Where: `body.type`, `query.character_id`, "
                                 "`path.user_id` ...")
    value: Any = None


class ErrorModel(BaseModel):
    """Every error answer: RFC 9457 problem details as huma writes them, plus ``code``."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"title": "Unprocessable Entity", "status": 422,
         "detail": "body.type: must be one of message, ...",
         "errors": [{"message": "must be one of message, ...", "location": "body.type"}],
         "code": "invalid_body"},
    ]})

    title: str = Field(description="The HTTP status text.")
    status: int
    detail: str = Field(description="What went wrong, for humans.")
    errors: list[ErrorDetail] | None = None
    code: str = Field(description="roomcast's stable error code (an RFC 9457 extension).")
    reason: str | None = Field(default=None, description="Why credentials were refused.")
