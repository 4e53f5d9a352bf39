"""The memory engine lets go of rooms nobody uses again (a user who left for good)."""

from __future__ import annotations

import gc
import tracemalloc

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


async def test_a_room_with_one_publication_costs_well_under_a_kibibyte() -> None:
    # Most user rooms hold a few publications for their TTL; with two deques each
    # such stream took ~2.2 KiB (a deque allocates a block of 64 slots at once).
    engine = MemoryHistory()
    rooms = [RoomId(f"user:{i}") for i in range(2000)]
    for room in rooms:  # the streams of joined users, before any publication
        await engine.top(room, KEEP)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for room in rooms:
            await engine.append(room, ENVELOPE, KEEP)
        per_room = (tracemalloc.get_traced_memory()[0] - before) / len(rooms)
    finally:
        tracemalloc.stop()
    assert per_room < 600, f"{per_room:.0f} bytes per room for one publication"


async def test_message_ids_of_dropped_publications_are_forgotten() -> None:
    small = Retention(size=5, ttl=300.0, meta_ttl=7 * 86400.0)
    engine = MemoryHistory()
    room = RoomId("group:ids")
    for n in range(1, 501):
        await engine.append(room, ENVELOPE, small, message_id=f"m{n}")
    # Kept for the retained publications only: a dropped one's id appends anew.
    assert (await engine.append(room, ENVELOPE, small, message_id="m500")).new is False
    again = await engine.append(room, ENVELOPE, small, message_id="m1")
    assert again.new is True and again.position.offset == 501
    stream = engine._streams[room]
    assert len(stream.ids) <= 2 * small.size + 16
    assert [e[2] for e in engine.export()[0]["entries"]] == ["m497", "m498", "m499", "m500",
                                                              "m1"]
