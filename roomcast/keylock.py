"""One asyncio lock per key (a user id), existing only while someone holds or awaits it."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from contextlib import AbstractAsyncContextManager
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class _Entry:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class KeyedLock(Generic[K]):
    """Serializes the critical sections of one key; different keys never wait for each other.

    Not reentrant: a holder must not ask for the same key again.
    """

    def __init__(self) -> None:
        self._entries: dict[K, _Entry] = {}

    def __len__(self) -> int:
        """Keys held or awaited right now."""
        return len(self._entries)

    def hold(self, key: K) -> AbstractAsyncContextManager[None]:
        """Held from ``async with`` until its end (a class, not a generator: a handshake
        takes one)."""
        return _Hold(self._entries, key)


class _Hold(Generic[K]):
    __slots__ = ("_entries", "_entry", "_key")

    def __init__(self, entries: dict[K, _Entry], key: K) -> None:
        self._entries = entries
        self._key = key
        self._entry: _Entry | None = None

    async def __aenter__(self) -> None:
        entry = self._entries.get(self._key)
        if entry is None:
            entry = self._entries[self._key] = _Entry()
        entry.users += 1
        try:
            await entry.lock.acquire()
        except BaseException:
            self._leave(entry)
            raise
        self._entry = entry

    async def __aexit__(self, *exc_info: object) -> None:
        entry, self._entry = self._entry, None
        assert entry is not None
        entry.lock.release()
        self._leave(entry)

    def _leave(self, entry: _Entry) -> None:
        entry.users -= 1
        if entry.users == 0:
            del self._entries[self._key]
