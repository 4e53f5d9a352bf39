"""A message from the server, read-only, parsed from one JSON text frame."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import orjson


class InvalidFrame(ValueError):
    """A frame from the server that is not a JSON envelope."""


@dataclass(frozen=True, slots=True)
class Message:
    """The wire envelope: ``{id, type, room?, from?, to?, data, timestamp}``."""

    type: str
    data: MappingProxyType[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    id: str | None = None
    room: str | None = None
    #: The wire ``from``: the connection id of the sender of a client message.
    from_: str | None = None
    to: str | None = None
    #: RFC 3339 string or Unix milliseconds, as the server sent it.
    timestamp: str | int | None = None
    #: The whole envelope as received, including fields this class does not know.
    raw: MappingProxyType[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def parse(cls, frame: str | bytes) -> Message:
        """Parse one frame.

        Raises:
            InvalidFrame: not JSON, not an object, or ``type`` missing.
        """
        try:
            obj = orjson.loads(frame)
        except orjson.JSONDecodeError as exc:
            raise InvalidFrame(f"invalid JSON from server: {exc}") from None
        if not isinstance(obj, dict):
            raise InvalidFrame("server frame is not a JSON object")
        return cls.from_dict(obj)

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Message:
        """Build from a decoded envelope."""
        kind = obj.get("type")
        if not isinstance(kind, str):
            raise InvalidFrame("server frame has no string type")
        data = obj.get("data")
        timestamp = obj.get("timestamp")
        return cls(
            type=kind,
            data=MappingProxyType(data if isinstance(data, dict) else {}),
            id=_str_or_none(obj.get("id")),
            room=_str_or_none(obj.get("room")),
            from_=_str_or_none(obj.get("from")),
            to=_str_or_none(obj.get("to")),
            timestamp=timestamp if isinstance(timestamp, str | int) else None,
            raw=MappingProxyType(obj),
        )

    @property
    def target_room(self) -> str | None:
        """The room this message is about: the envelope's, else ``data.room``/``room_id``."""
        if self.room is not None:
            return self.room
        for key in ("room", "room_id"):
            value = self.data.get(key)
            if isinstance(value, str):
                return value
        return None

    def to_json(self) -> bytes:
        """The envelope as received, re-encoded."""
        return orjson.dumps(dict(self.raw))


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None
