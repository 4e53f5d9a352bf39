"""Domain value types shared by every layer."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import NewType

ConnId = NewType("ConnId", str)
UserId = NewType("UserId", str)
RoomId = NewType("RoomId", str)
GroupId = NewType("GroupId", str)
ServerId = NewType("ServerId", str)

PERSONAL_PREFIX = "user:"
GROUP_PREFIX = "group:"


class RoomType(StrEnum):
    """Kinds of rooms (personal and group, as in the Go gateway)."""

    PERSONAL = "personal"
    GROUP = "group"


def personal_room(user_id: str) -> RoomId:
    """The personal room of a user."""
    return RoomId(PERSONAL_PREFIX + user_id)


def group_room(group_id: str) -> RoomId:
    """The room of a group (one string for all its members' records, not one each)."""
    return RoomId(sys.intern(GROUP_PREFIX + group_id))


def room_type(room: str) -> RoomType | None:
    """Kind of a room id, or None for an id roomcast never creates."""
    if room.startswith(PERSONAL_PREFIX) and len(room) > len(PERSONAL_PREFIX):
        return RoomType.PERSONAL
    if room.startswith(GROUP_PREFIX) and len(room) > len(GROUP_PREFIX):
        return RoomType.GROUP
    return None


def group_room_name(group_name: str) -> str:
    """Display name of a group room (as in the Go gateway: ``Group: {group_name}``)."""
    return f"Group: {group_name}"
