"""How many ``room_update`` events a room sends: a budget, then one update per interval.

Join/leave spam within a connection's own rate limit once made each member of a
60-member room receive hundreds of ``room_update`` a second. Each room may send
``rate`` per-member events a second (bursts of twice that); beyond it the room's events
are coalesced, as in big rooms, into one ``members`` update per interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable

from roomcast.supervisor import supervise
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


#: Rooms named in one report to the other instances.
REPORT_CHUNK = 500


class CoalescedUpdates:
    """One ``members`` update per interval for each room whose members changed.

    A room changes through this instance's joins and leaves (:meth:`changed`) or those
    of another instance (:meth:`changed_elsewhere`, from its report). Each interval the
    local members of every changed room get one update with the cluster-wide ``count``,
    and the rooms changed here are ``report``-ed to the other instances: a member hears
    one update per interval however many instances its room changed on, where each
    instance publishing its own update to every member made it one per instance.
    """

    def __init__(
        self,
        interval: float,
        *,
        count: Callable[[RoomId], Awaitable[int]],
        deliver: Callable[[RoomId, int], None],
        report: Callable[[tuple[RoomId, ...]], Awaitable[None]],
    ) -> None:
        self._interval = interval
        self._count = count
        self._deliver = deliver
        self._report = report
        #: Rooms whose local members get an update at the end of this interval.
        self._due: set[RoomId] = set()
        #: Of those, the rooms changed here (the others already know of theirs).
        self._here: set[RoomId] = set()
        self._task: asyncio.Task[None] | None = None

    def changed(self, room: RoomId) -> None:
        """A member of ``room`` joined or left on this instance."""
        self._here.add(room)
        self._due.add(room)
        self._start()

    def changed_elsewhere(self, rooms: Iterable[RoomId]) -> None:
        """Another instance reported these rooms (those with members here) changed."""
        before = len(self._due)
        self._due.update(rooms)
        if len(self._due) > before:
            self._start()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = supervise("room-events", self._run)

    async def _run(self) -> None:
        while self._due:
            await asyncio.sleep(self._interval)
            due, self._due = self._due, set()
            here, self._here = sorted(self._here), set()
            for i in range(0, len(here), REPORT_CHUNK):
                await self._report(tuple(here[i:i + REPORT_CHUNK]))
            for room in due:
                self._deliver(room, await self._count(room))
