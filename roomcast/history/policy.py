"""Which rooms keep history, and how much: retention per room kind from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from roomcast.history.base import Retention
from roomcast.types import RoomType, room_type

#: Default of ROOMCAST_HISTORY_META_TTL: epochs and top offsets outlive the data a week.
DEFAULT_META_TTL = 7 * 86400.0


@dataclass(frozen=True, slots=True)
class HistoryPolicy:
    """Retention of ``user:`` and ``group:`` rooms (None: no history for that kind).

    ``recovery_max`` bounds how many missed publications one recovery replays
    (more than that answers ``recovered: false``); ``history_limit`` bounds a
    ``history`` request.
    """

    user: Retention | None
    group: Retention | None
    recovery_max: int
    history_limit: int = 1000

    @classmethod
    def build(
        cls, *, user_size: int, user_ttl: float, group_size: int, group_ttl: float,
        meta_ttl: float = DEFAULT_META_TTL, recovery_max: int | None = None,
    ) -> HistoryPolicy:
        """A policy from the settings; a size or TTL of 0 turns that kind off."""
        user = _retention(user_size, user_ttl, meta_ttl)
        group = _retention(group_size, group_ttl, meta_ttl)
        if recovery_max is None:
            recovery_max = max(user_size if user else 0, group_size if group else 0)
        return cls(user, group, recovery_max)

    @classmethod
    def off(cls) -> HistoryPolicy:
        return cls(None, None, 0)

    @property
    def enabled(self) -> bool:
        return self.user is not None or self.group is not None

    def for_room(self, room: str) -> Retention | None:
        """The room's retention, or None when it keeps no history."""
        kind = room_type(room)
        if kind is RoomType.PERSONAL:
            return self.user
        if kind is RoomType.GROUP:
            return self.group
        return None


def _retention(size: int, ttl: float, meta_ttl: float) -> Retention | None:
    if size <= 0 or ttl <= 0:
        return None
    # The metadata must outlive the data, or a late client would see a silent gap.
    return Retention(size, ttl, max(meta_ttl, ttl))
