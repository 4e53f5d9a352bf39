"""The in-memory history engine: one instance, streams in process memory.

Its epochs are made at random, so a restart changes every room's epoch (clients are
told ``recovered: false``), unless the streams were saved at a graceful stop and loaded
at the start (:mod:`roomcast.history.snapshot`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from roomcast.history.base import (
    Appended,
    Position,
    Publication,
    Retention,
    Route,
    Slice,
    new_epoch,
    stamp,
)
from roomcast.types import RoomId

#: Appends, or seconds with at least one append, between two sweeps of expired streams.
_PRUNE_EVERY = 1024
_PRUNE_INTERVAL = 60.0

#: What a stream never appended to holds (most user rooms: every connection's user room
#: has a stream from its join on). Shared, never written to: see _Stream.writable.
_NO_ENTRIES: list[Publication] = []
_NO_OFFSETS: dict[str, int] = {}


@dataclass(slots=True)
class _Stream:
    """One room's stream.

    Lists, not deques: a deque allocates a block of 64 slots (~0.5 KiB) at once, and
    most streams hold a few publications (a user room's, for its TTL); a stream with one
    publication cost ~2.2 KiB with two deques, ~0.4 KiB with a list. Dropping the oldest
    of a full list moves ``size`` pointers: at sizes in the hundreds, nothing next to
    the rest of an append.
    """

    epoch: str
    meta_until: float
    top: int = 0
    entries: list[Publication] = field(default_factory=lambda: _NO_ENTRIES)
    #: message id -> offset of the appends that carried one (idempotent appends). Ids of
    #: entries dropped since are ignored when looked up, and swept as the map grows.
    ids: dict[str, int] = field(default_factory=lambda: _NO_OFFSETS)
    data_until: float = 0.0

    def writable(self) -> _Stream:
        """The stream, with a list of its own to append to."""
        if self.entries is _NO_ENTRIES:
            self.entries = []
        return self

    def stored(self, message_id: str) -> Publication | None:
        """The retained entry appended with ``message_id``, if any."""
        offset = self.ids.get(message_id)
        if offset is None or not self.entries:
            return None
        index = offset - self.entries[0].offset
        return self.entries[index] if index >= 0 else None

    def remember(self, message_id: str, offset: int, size: int) -> None:
        if self.ids is _NO_OFFSETS:
            self.ids = {}
        self.ids[message_id] = offset
        if len(self.ids) > 2 * size + 16:
            first = self.entries[0].offset if self.entries else offset + 1
            self.ids = {m: o for m, o in self.ids.items() if o >= first}

    def drop_data(self) -> None:
        self.entries, self.ids = _NO_ENTRIES, _NO_OFFSETS

    def message_ids(self) -> dict[int, str]:
        """offset -> message id, for the retained entries that have one."""
        first = self.entries[0].offset if self.entries else self.top + 1
        return {o: m for m, o in self.ids.items() if o >= first}


class MemoryHistory:
    """A :class:`~roomcast.history.base.HistoryEngine` in this process's memory.

    Args:
        clock: monotonic seconds (tests pass a fake one to expire data).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._streams: dict[RoomId, _Stream] = {}
        #: Streams whose data expired: (epoch, top, meta_until) only. A room left by its
        #: last user is rarely published to again; its meta must outlive it for a week,
        #: and a tuple costs less than a _Stream.
        self._idle: dict[RoomId, tuple[str, int, float]] = {}
        self._appends = 0
        self._pruned_at = clock()

    async def append(
        self, room: RoomId, envelope: bytes, retention: Retention, *,
        message_id: str | None = None, route: Route | None = None,
    ) -> Appended:
        stream = self._stream(room, retention).writable()
        if message_id is not None and (stored := stream.stored(message_id)) is not None:
            return Appended(Position(stream.epoch, stored.offset), stored.payload, new=False)
        stream.top += 1
        payload = stamp(envelope, stream.top, stream.epoch)
        entries = stream.entries
        entries.append(Publication(stream.top, payload))
        if len(entries) > retention.size:
            del entries[: len(entries) - retention.size]
        if message_id is not None:
            stream.remember(message_id, stream.top, retention.size)
        now = self._clock()
        stream.data_until = now + retention.ttl
        stream.meta_until = now + retention.meta_ttl
        self._appends += 1
        if self._appends % _PRUNE_EVERY == 0 or now - self._pruned_at >= _PRUNE_INTERVAL:
            self._prune(now)
        return Appended(Position(stream.epoch, stream.top), payload)

    async def read(
        self, room: RoomId, retention: Retention, *, since: int = 0, limit: int,
        reverse: bool = False,
    ) -> Slice:
        stream = self._stream(room, retention)
        after = [p for p in stream.entries if p.offset > since]
        chosen = after[::-1][:limit] if reverse else after[:limit]
        return Slice(Position(stream.epoch, stream.top), chosen)

    async def top(self, room: RoomId, retention: Retention) -> Position:
        stream = self._stream(room, retention)
        return Position(stream.epoch, stream.top)

    async def close(self) -> None:
        self._streams.clear()
        self._idle.clear()

    def stats(self) -> tuple[int, int, int]:
        """Streams holding data, streams reduced to their meta, publications held."""
        return (len(self._streams), len(self._idle),
                sum(len(s.entries) for s in self._streams.values()))

    def export(self) -> list[dict[str, Any]]:
        """Every live stream as plain data, TTLs as seconds remaining (a snapshot)."""
        now = self._clock()
        out = []
        for room, (epoch, top, meta_until) in self._idle.items():
            if now < meta_until:
                out.append({"room": room, "epoch": epoch, "top": top,
                            "meta_ttl": meta_until - now, "data_ttl": 0.0, "entries": []})
        for room, s in self._streams.items():
            if now >= s.meta_until:
                continue
            fresh = bool(s.entries) and now < s.data_until
            ids = s.message_ids() if fresh else {}
            out.append({
                "room": room, "epoch": s.epoch, "top": s.top,
                "meta_ttl": s.meta_until - now,
                "data_ttl": s.data_until - now if fresh else 0.0,
                "entries": [[p.offset, p.payload.decode(), ids.get(p.offset)]
                            for p in s.entries] if fresh else [],
            })
        return out

    def restore(self, rooms: list[dict[str, Any]], *, elapsed: float = 0.0) -> None:
        """Load streams :meth:`export` made, ``elapsed`` seconds ago."""
        now = self._clock()
        for item in rooms:
            meta_ttl = float(item["meta_ttl"]) - elapsed
            if meta_ttl <= 0:
                continue
            stream = _Stream(str(item["epoch"]), now + meta_ttl, top=int(item["top"])).writable()
            data_ttl = float(item["data_ttl"]) - elapsed
            if data_ttl > 0:
                stream.data_until = now + data_ttl
                entries = item["entries"]
                for offset, payload, message_id in entries:
                    stream.entries.append(Publication(int(offset), str(payload).encode()))
                    if message_id is not None:
                        stream.remember(str(message_id), int(offset), len(entries))
            self._idle.pop(RoomId(str(item["room"])), None)
            self._streams[RoomId(str(item["room"]))] = stream

    def _stream(self, room: RoomId, retention: Retention) -> _Stream:
        """The room's stream with expired data dropped; a new epoch once its meta expired."""
        now = self._clock()
        stream = self._streams.get(room)
        if stream is None and room in self._idle:
            epoch, top, meta_until = self._idle.pop(room)
            stream = self._streams[room] = _Stream(epoch, meta_until, top=top)
        if stream is None or now >= stream.meta_until:
            stream = self._streams[room] = _Stream(new_epoch(), now + retention.meta_ttl)
        elif stream.entries and now >= stream.data_until:
            stream.drop_data()
        return stream

    def _prune(self, now: float) -> None:
        """Forget expired meta; reduce streams whose data expired to their meta.

        Data is otherwise only dropped when its room is used again, and the room of a
        user who left is not: its publications would stay for the meta's week.
        """
        self._pruned_at = now
        for room in [r for r, m in self._idle.items() if now >= m[2]]:
            del self._idle[room]
        for room, s in list(self._streams.items()):
            if now >= s.meta_until:
                del self._streams[room]
            elif now >= s.data_until:
                del self._streams[room]
                self._idle[room] = (s.epoch, s.top, s.meta_until)
