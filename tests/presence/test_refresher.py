"""The presence refresher runs only where entries expire (a store shared by instances)."""

from __future__ import annotations

import asyncio

import pytest

from roomcast.broker.base import PresenceChanged
from roomcast.hub import Hub
from roomcast.presence.base import Change
from roomcast.presence.memory import MemoryPresenceStore
from roomcast.presence.tracker import PresenceTracker
from roomcast.types import ConnId, RoomId, UserId

SWEEPS = 3


class CountingStore(MemoryPresenceStore):
    """The memory store, claiming to expire entries or not, counting the passes."""

    def __init__(self, *, expires: bool) -> None:
        super().__init__()
        self.expires = expires
        self.refreshes = 0
        self.sweeps = 0
        self.swept = asyncio.Event()

    async def refresh(self, conns: list[tuple[UserId, ConnId]]) -> list[tuple[UserId, ConnId]]:
        self.refreshes += 1
        return await super().refresh(conns)

    async def sweep(self) -> list[Change]:
        self.sweeps += 1
        if self.sweeps >= SWEEPS:
            self.swept.set()
        return await super().sweep()


async def _publish(change: PresenceChanged) -> None:
    return None


async def _rooms_of(user_id: UserId) -> set[RoomId]:
    return set()


@pytest.mark.parametrize("expires", [False, True])
async def test_only_a_store_whose_entries_expire_is_refreshed(expires: bool) -> None:
    store = CountingStore(expires=expires)
    # Refresh every ttl/3 = 0.01 s, sweep every 0.1 s: a running refresher comes first.
    tracker = PresenceTracker(store, hub=Hub(), publish=_publish, rooms_of=_rooms_of,
                              ttl=0.03, grace=0.3, alone=True)
    await tracker.start()
    try:
        await asyncio.wait_for(store.swept.wait(), 60)
    finally:
        await tracker.close()
    assert store.sweeps >= SWEEPS
    assert (store.refreshes > 0) is expires
