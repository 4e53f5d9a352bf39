"""The memory engine lets go of rooms nobody uses again (a user who left for good)."""

from __future__ import annotations

from roomcast.history.base import Retention
from roomcast.history.memory import MemoryHistory
from roomcast.types import RoomId
from tests.history.engines import FakeClock

KEEP = Retention(size=100, ttl=300.0, meta_ttl=7 * 86400.0)
ENVELOPE = b'{"type":"message","data":{"text":"hello"}}'


async def test_data_of_rooms_never_used_again_goes_after_its_ttl() -> None:
    clock = FakeClock()
    engine = MemoryHistory(clock=clock)
    gone = [RoomId(f"user:{i}") for i in range(50)]
    for room in gone:
        for _ in range(3):
            await engine.append(room, ENVELOPE, KEEP)
    before = await engine.top(gone[7], KEEP)
    await engine.top(RoomId("user:joined-never-published"), KEEP)
    assert engine.stats() == (51, 0, 150)

    clock.now += KEEP.ttl + 1
    await engine.append(RoomId("group:busy"), ENVELOPE, KEEP)

    # Only the busy room holds data; the others keep their epoch and offset alone.
    assert engine.stats() == (1, 51, 1)
    assert await engine.top(gone[7], KEEP) == before
    assert (await engine.read(gone[7], KEEP, limit=10)).publications == []
    assert (await engine.append(gone[7], ENVELOPE, KEEP)).position.offset == before.offset + 1


async def test_meta_of_rooms_never_used_again_goes_after_its_ttl() -> None:
    clock = FakeClock()
    engine = MemoryHistory(clock=clock)
    for i in range(20):
        await engine.append(RoomId(f"user:{i}"), ENVELOPE, KEEP)
    clock.now += KEEP.ttl + 1
    await engine.append(RoomId("group:busy"), ENVELOPE, KEEP)
    assert engine.stats() == (1, 20, 1)

    clock.now += KEEP.meta_ttl + 1
    await engine.append(RoomId("group:busy"), ENVELOPE, KEEP)
    assert engine.stats() == (1, 0, 1)


async def test_a_snapshot_keeps_rooms_reduced_to_their_meta() -> None:
    clock = FakeClock()
    engine = MemoryHistory(clock=clock)
    kept = (await engine.append(RoomId("user:left"), ENVELOPE, KEEP)).position
    clock.now += KEEP.ttl + 1
    await engine.append(RoomId("group:busy"), ENVELOPE, KEEP)
    assert engine.stats() == (1, 1, 1)
    restored = MemoryHistory(clock=clock)
    restored.restore(engine.export())
    assert await restored.top(RoomId("user:left"), KEEP) == kept
