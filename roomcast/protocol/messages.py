"""Build server-to-client envelopes, encoded once to JSON bytes."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any

import orjson

from roomcast.protocol.codes import ErrorCode

#: The latest timestamp's second, formatted: one ``strftime`` per second, not per message.
_second: tuple[int, str] = (-1, "")


def now_rfc3339() -> str:
    """The current UTC time as RFC 3339 with milliseconds, as the Go gateway sends it."""
    global _second
    second, ms = divmod(time.time_ns() // 1_000_000, 1000)
    cached = _second
    if cached[0] != second:
        cached = _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{cached[1]}.{ms:03d}Z"


def new_id() -> str:
    """A fresh message or connection id (UUID4, as the Go gateway uses).

    Formatted from 16 random bytes directly: ``str(uuid.uuid4())`` cost several
    times more, once per message.
    """
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def envelope(
    type: str,
    data: dict[str, Any] | None = None,
    *,
    id: str | None = None,
    room: str | None = None,
    from_: str | None = None,
    to: str | None = None,
    timestamp: str | None = None,
) -> dict[str, Any]:
    """A server envelope as a dict; absent optional fields are omitted."""
    # `is None`, not `or`: an empty client id is still the id its reply must carry.
    env: dict[str, Any] = {"id": id if id is not None else new_id(), "type": type}
    if room is not None:
        env["room"] = room
    if from_ is not None:
        env["from"] = from_
    if to is not None:
        env["to"] = to
    env["data"] = data if data is not None else {}
    env["timestamp"] = timestamp or now_rfc3339()
    return env


def encode(env: dict[str, Any]) -> bytes:
    """Serialize an envelope once; the bytes are shared by every recipient."""
    return orjson.dumps(env)


def error(code: ErrorCode, message: str, *, reply_to: str | None,
          reason: str | None = None) -> dict[str, Any]:
    """An ``error`` message; carries the offending message's id when there was one."""
    data: dict[str, Any] = {"code": str(code), "message": message, "temporary": code.temporary}
    if reason is not None:
        data["reason"] = reason
    return envelope("error", data, id=reply_to)


def ack(reply_to: str, **fields: Any) -> dict[str, Any]:
    """The reply to a client message carrying an ``id`` (the React client waits for it)."""
    return envelope("system", {"action": "ack", "status": "ok", **fields}, id=reply_to)


def pong(reply_to: str | None) -> dict[str, Any]:
    """The reply to the React client's ``system`` ping."""
    return envelope("system", {"action": "pong", "timestamp": now_rfc3339()}, id=reply_to)


def welcome(connection_id: str, user_id: str) -> dict[str, Any]:
    """The first message after connect."""
    return envelope(
        "system_notification",
        {"message": "Connected to WebSocket", "connection_id": connection_id, "user_id": user_id},
    )


def room_joined(
    room: str, room_type: str, name: str, member_count: int, **stream: Any
) -> dict[str, Any]:
    """Tell a connection it is now in ``room``; ``stream`` adds the room's history
    fields (``epoch``, ``offset``, ``recovered``, ``replayed``)."""
    data = {
        "room": room,
        "room_id": room,
        "type": room_type,
        "name": name,
        "member_count": member_count,
        **stream,
    }
    return envelope("room_joined", data, room=room)


def room_left(room: str, reason: str) -> dict[str, Any]:
    """Tell a connection it is no longer in ``room``."""
    return envelope("room_left", {"room": room, "room_id": room, "reason": reason}, room=room)


def room_update(
    room: str,
    action: str,
    member_count: int,
    connection_id: str | None = None,
    user_id: str | None = None,
) -> dict[str, Any]:
    """The Go gateway's ``room_update`` to the other members (``action="members"`` when
    coalesced); roomcast adds the ``user_id`` of the connection that came or went."""
    data: dict[str, Any] = {"action": action, "room_id": room, "member_count": member_count}
    if connection_id is not None:
        data["connection_id"] = connection_id
    if user_id is not None:
        data["user_id"] = user_id
    return envelope("room_update", data, room=room)


def group_membership_change(
    user_id: str, group_id: str, group_name: str, joined: bool
) -> dict[str, Any]:
    """Sent to the user's own connections when a membership changes."""
    now = now_rfc3339()
    data = {
        "user_id": user_id,
        "group_id": group_id,
        "group_name": group_name,
        "joined": joined,
        "timestamp": now,
    }
    return envelope("group_membership_change", data, timestamp=now)


def user_profile_update(
    user_id: str, character_id: int | None, profile: dict[str, Any]
) -> dict[str, Any]:
    """A profile change, sent to the user's connections."""
    now = now_rfc3339()
    data = {"user_id": user_id, "character_id": character_id, "profile": profile, "timestamp": now}
    return envelope("user_profile_update", data, timestamp=now)


def rfc3339(seconds: float) -> str:
    """A Unix time as RFC 3339 (whole seconds, UTC)."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


def token_expiring(seconds_left: int, expires_at: float) -> dict[str, Any]:
    """Warn a connection that its token expires soon (refresh it, or be closed)."""
    return envelope(
        "system",
        {"action": "token_expiring", "expires_in": seconds_left,
         "expires_at": rfc3339(expires_at)},
    )
