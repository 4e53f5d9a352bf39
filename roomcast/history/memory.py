"""The in-memory history engine: one instance, streams in process memory.

Its epochs are made at random, so a restart changes every room's epoch (clients are
told ``recovered: false``), unless the streams were saved at a graceful stop and loaded
at the start (:mod:`roomcast.history.snapshot`).
"""

from __future__ import annotations

import time
from collections import deque
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

#: Appends between two sweeps of streams whose metadata expired.
_PRUNE_EVERY = 1024


@dataclass(slots=True)
class _Stream:
    epoch: str
    meta_until: float
    top: int = 0
    entries: deque[Publication] = field(default_factory=deque)
    #: The message id of each entry (None: appended without one), in step with entries.
    entry_ids: deque[str | None] = field(default_factory=deque)
    #: message id -> offset, for the retained entries (idempotent appends).
    ids: dict[str, int] = field(default_factory=dict)
    data_until: float = 0.0


class MemoryHistory:
    """A :class:`~roomcast.history.base.HistoryEngine` in this process's memory.

    Args:
        clock: monotonic seconds (tests pass a fake one to expire data).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._streams: dict[RoomId, _Stream] = {}
        self._appends = 0

    async def append(
        self, room: RoomId, envelope: bytes, retention: Retention, *,
        message_id: str | None = None, route: Route | None = None,
    ) -> Appended:
        stream = self._stream(room, retention)
        if message_id is not None and message_id in stream.ids:
            offset = stream.ids[message_id]
            stored = stream.entries[offset - stream.entries[0].offset]
            return Appended(Position(stream.epoch, offset), stored.payload, new=False)
        stream.top += 1
        payload = stamp(envelope, stream.top, stream.epoch)
        stream.entries.append(Publication(stream.top, payload))
        stream.entry_ids.append(message_id)
        if message_id is not None:
            stream.ids[message_id] = stream.top
        while len(stream.entries) > retention.size:
            stream.entries.popleft()
            gone = stream.entry_ids.popleft()
            if gone is not None:
                stream.ids.pop(gone, None)
        now = self._clock()
        stream.data_until = now + retention.ttl
        stream.meta_until = now + retention.meta_ttl
        self._appends += 1
        if self._appends % _PRUNE_EVERY == 0:
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

    def export(self) -> list[dict[str, Any]]:
        """Every live stream as plain data, TTLs as seconds remaining (a snapshot)."""
        now = self._clock()
        out = []
        for room, s in self._streams.items():
            if now >= s.meta_until:
                continue
            fresh = bool(s.entries) and now < s.data_until
            out.append({
                "room": room, "epoch": s.epoch, "top": s.top,
                "meta_ttl": s.meta_until - now,
                "data_ttl": s.data_until - now if fresh else 0.0,
                "entries": [[p.offset, p.payload.decode(), i]
                            for p, i in zip(s.entries, s.entry_ids, strict=True)] if fresh
                else [],
            })
        return out

    def restore(self, rooms: list[dict[str, Any]], *, elapsed: float = 0.0) -> None:
        """Load streams :meth:`export` made, ``elapsed`` seconds ago."""
        now = self._clock()
        for item in rooms:
            meta_ttl = float(item["meta_ttl"]) - elapsed
            if meta_ttl <= 0:
                continue
            stream = _Stream(str(item["epoch"]), now + meta_ttl, top=int(item["top"]))
            data_ttl = float(item["data_ttl"]) - elapsed
            if data_ttl > 0:
                stream.data_until = now + data_ttl
                for offset, payload, message_id in item["entries"]:
                    stream.entries.append(Publication(int(offset), str(payload).encode()))
                    stream.entry_ids.append(message_id)
                    if message_id is not None:
                        stream.ids[message_id] = int(offset)
            self._streams[RoomId(str(item["room"]))] = stream

    def _stream(self, room: RoomId, retention: Retention) -> _Stream:
        """The room's stream with expired data dropped; a new epoch once its meta expired."""
        now = self._clock()
        stream = self._streams.get(room)
        if stream is None or now >= stream.meta_until:
            stream = self._streams[room] = _Stream(new_epoch(), now + retention.meta_ttl)
        elif stream.entries and now >= stream.data_until:
            stream.entries.clear()
            stream.entry_ids.clear()
            stream.ids.clear()
        return stream

    def _prune(self, now: float) -> None:
        for room in [r for r, s in self._streams.items() if now >= s.meta_until]:
            del self._streams[room]
