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
    data: dict[str, Any] | None = Field(
        default=None, description="Any JSON object; null or absent means {}."
    )

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in SERVER_API_TYPES:
            raise ValueError("must be one of " + ", ".join(SERVER_API_TYPES))
        return value

    @field_validator("data")
    @classmethod
    def _data_encodable(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else _encodable(value)


class MembershipBody(_Request):
    """``PUT .../groups/{group_id}``: the group's display name (default: its id)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "Blue team"}]})

    name: str | None = Field(default=None, pattern=NAME_PATTERN,
                             description="Display name; the room is named `Group: {name}`.")


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
    """Filters of ``GET /websocket/rooms``; ``member_id`` is a connection or user id."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["personal", "group"] | None = None
    member_id: str | None = Field(default=None, max_length=128)


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


class Sent(BaseModel):
    """The answer of every message POST."""

    model_config = _example(success=True, message_id=_MSG_ID, recipients_count=2, timestamp=_TIME,
                            message={"id": _MSG_ID, "type": "notification",
                                     "data": {"title": "Deploy", "user_id": "alice"},
                                     "timestamp": _TIME})

    success: bool
    message_id: str
    recipients_count: int = Field(
        description="Connections the target reached when it was published, cluster-wide."
    )
    timestamp: str
    message: Envelope


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


class Status(BaseModel):
    """Public health of this instance: counts only, no user data."""

    model_config = _example(status="healthy", server_id=_SERVER_ID, total_connections=42,
                            active_connections=17, total_rooms=9, messages_processed=1234,
                            redis_channels=["websocket:messages", "websocket:rooms",
                                            "websocket:users", "websocket:system"])

    status: Literal["healthy", "unhealthy"]
    server_id: str
    total_connections: int
    active_connections: int
    total_rooms: int
    messages_processed: int
    redis_channels: list[str]
    reason: str | None = None


class ErrorDetail(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    """Every error answer: a stable ``error`` code and a sentence for humans."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"error": "invalid_body", "message": "type: must be one of message, ...",
         "details": [{"field": "type", "message": "must be one of message, ..."}]},
    ]})

    error: str
    message: str
    reason: str | None = Field(default=None, description="Why credentials were refused.")
    details: list[ErrorDetail] | None = None
