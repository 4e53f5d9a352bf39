"""Presence of a single instance, in memory."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

from roomcast.presence.base import (
    SEEN_TTL_MS,
    Change,
    Entry,
    PresenceStats,
    UserPresence,
    aggregate,
    now_ms,
)
from roomcast.types import ConnId, UserId


class MemoryPresenceStore:
    """A :class:`~roomcast.presence.base.PresenceStore` for one instance.

    Live connections never expire here (they die with the process); only the
    entries of closed connections wait out their grace period.
    """

    expires = False

    def __init__(self, *, clock: Callable[[], int] = now_ms, max_seen: int = 100_000) -> None:
        self._clock = clock
        self._max_seen = max_seen
        self._entries: dict[UserId, dict[ConnId, Entry]] = {}
        #: Closed connections in their grace period: conn -> deadline (ms).
        self._leaving: dict[ConnId, int] = {}
        self._deadlines: list[tuple[int, ConnId, UserId]] = []
        #: When each user's last connection went, oldest first.
        self._seen: dict[UserId, int] = {}
        self._seq = itertools.count(1)

    async def close(self) -> None:
        return None

    def _current(self, user_id: UserId) -> UserPresence:
        entries = self._entries.get(user_id, {})
        return aggregate(user_id, list(entries.values()), self._seen.get(user_id, 0))

    async def add(self, user_id: UserId, conn_id: ConnId, entry: Entry) -> Change:
        before = self._current(user_id)
        self._entries.setdefault(user_id, {})[conn_id] = entry
        self._leaving.pop(conn_id, None)
        return Change(before, self._current(user_id), next(self._seq))

    async def remove(self, user_id: UserId, conn_id: ConnId, *, grace: float) -> Change | None:
        if conn_id not in self._entries.get(user_id, {}):
            return None
        if grace > 0:
            deadline = self._clock() + int(grace * 1000)
            self._leaving[conn_id] = deadline
            heapq.heappush(self._deadlines, (deadline, conn_id, user_id))
            return None
        return self._drop(user_id, [conn_id])

    def _drop(self, user_id: UserId, conn_ids: list[ConnId]) -> Change:
        before = self._current(user_id)
        entries = self._entries.get(user_id, {})
        for conn_id in conn_ids:
            entries.pop(conn_id, None)
            self._leaving.pop(conn_id, None)
        if not entries:
            self._entries.pop(user_id, None)
            self._seen.pop(user_id, None)  # to the end: the map stays in time order
            self._seen[user_id] = self._clock()
        return Change(before, self._current(user_id), next(self._seq))

    async def presence(self, user_ids: list[UserId]) -> dict[UserId, UserPresence]:
        return {u: self._current(u) for u in user_ids}

    async def presence_stats(self) -> PresenceStats:
        return PresenceStats(len(self._entries), sum(len(e) for e in self._entries.values()))

    async def refresh(self, conns: list[tuple[UserId, ConnId]]) -> list[tuple[UserId, ConnId]]:
        return [(u, c) for u, c in conns if c not in self._entries.get(u, {})]

    async def sweep(self) -> list[Change]:
        now = self._clock()
        due: dict[UserId, list[ConnId]] = {}
        while self._deadlines and self._deadlines[0][0] <= now:
            deadline, conn_id, user_id = heapq.heappop(self._deadlines)
            if self._leaving.get(conn_id) == deadline:  # not re-added meanwhile
                due.setdefault(user_id, []).append(conn_id)
        self._forget_seen(now)
        return [self._drop(user_id, conns) for user_id, conns in due.items()]

    def _forget_seen(self, now: int) -> None:
        """Drop ``lastSeen`` times older than Redis keeps them, and the oldest beyond
        ``max_seen`` users (memory bounded by users, not by how many ever came)."""
        seen = self._seen
        excess = len(seen) - self._max_seen
        stale: list[UserId] = []
        for user_id, at in seen.items():  # oldest first
            if len(stale) >= excess and at > now - SEEN_TTL_MS:
                break
            stale.append(user_id)
        for user_id in stale:
            del seen[user_id]

    async def follow(self, user_ids: list[UserId], following: bool) -> None:
        """Nothing to share: the tracker knows its own subscribers."""
