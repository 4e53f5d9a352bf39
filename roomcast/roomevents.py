"""A budget of ``room_update`` events per room, whatever the room's size.

Join/leave spam within a connection's own rate limit once made each member of a
60-member room receive hundreds of ``room_update`` a second. Each room may send
``rate`` per-member events a second (bursts of twice that); beyond it the room's events
are coalesced, as in big rooms, into one ``members`` update per interval.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from roomcast.types import RoomId

#: Above this many rooms tracked, rooms whose budget is full again are forgotten.
_PRUNE_AT = 4096


class RoomEventBudget:
    """Token buckets of per-member room events, one per room."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = 2 * rate
        self._clock = clock
        #: room -> (tokens, when they were counted)
        self._rooms: dict[RoomId, tuple[float, float]] = {}

    def take(self, room: RoomId) -> bool:
        """Whether ``room`` may send one more per-member event now."""
        now = self._clock()
        tokens, last = self._rooms.get(room, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        allowed = tokens >= 1
        self._rooms[room] = (tokens - 1 if allowed else tokens, now)
        if len(self._rooms) > _PRUNE_AT:
            self._prune(now)
        return allowed

    def _prune(self, now: float) -> None:
        full = [room for room, (tokens, last) in self._rooms.items()
                if tokens + (now - last) * self.rate >= self.burst]
        for room in full:
            del self._rooms[room]
