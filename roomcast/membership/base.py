"""The membership store interface.

A store answers "which groups is this user in?" at connect time and records
changes made through the API or CLI. Implementations never block the event
loop and raise :class:`~roomcast.exceptions.StoreError` when the backend fails.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Protocol

from roomcast.types import GroupId, UserId


@dataclass(frozen=True, slots=True)
class Group:
    """One active group membership."""

    id: GroupId
    name: str


@functools.lru_cache(maxsize=4096)
def shared_group(group_id: GroupId, name: str) -> Group:
    """One :class:`Group` per distinct id and name: every connection keeps its groups
    (~100 bytes each with the id), mostly the same few."""
    return Group(group_id, name)


class MembershipStore(Protocol):
    """Where group memberships live (SQLite, Redis, PostgreSQL, ...)."""

    async def open(self) -> None:
        """Connect and create the schema if needed."""

    async def close(self) -> None:
        """Release connections."""

    async def groups_of(self, user_id: UserId) -> list[Group]:
        """The user's groups, ordered by group id."""

    async def add(self, user_id: UserId, group_id: GroupId, name: str) -> bool:
        """Add a membership (or rename the group); True only if it is new."""

    async def remove(self, user_id: UserId, group_id: GroupId) -> Group | None:
        """Remove a membership; the removed group, or None if there was none."""

    async def members(self, group_id: GroupId) -> list[UserId]:
        """The users of a group, ordered by user id."""
