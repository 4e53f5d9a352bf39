"""The receiver's ordering of a room's publications, without I/O: duplicates, swaps,
gaps filled from the stream, and gaps that cannot be filled."""

from __future__ import annotations

import asyncio

from roomcast.broker.base import Target, ToRoom
from roomcast.history.base import Position, Publication, Slice, position_of, stamp
from roomcast.history.ordering import Ordering
from roomcast.types import RoomId

ROOM = RoomId("group:o")
TARGET = ToRoom(ROOM)


def pub(offset: int, epoch: str = "e") -> bytes:
    return stamp(b'{"type":"message","data":{}}', offset, epoch)


class World:
    """A stream holding offsets ``stored``, and what reached the local connections."""

    def __init__(self, stored: range) -> None:
        self.stored = stored
        #: The stream's epoch (a test may start a new one).
        self.epoch = "e"
        self.delivered: list[int] = []
        self.lost: list[Target] = []
        self.changed = asyncio.Event()
        self.ordering = Ordering(self.read, self.deliver, self.lost.append)

    async def read(self, room: RoomId, since: int, limit: int) -> Slice:
        found = [Publication(o, pub(o, self.epoch)) for o in self.stored if o > since][:limit]
        return Slice(Position(self.epoch, max(self.stored, default=0)), found)

    def deliver(self, target: Target, payload: bytes) -> int:
        position = position_of(payload)
        assert position is not None
        self.delivered.append(position.offset)
        self.changed.set()
        return 1

    def offer(self, *offsets: int) -> None:
        for offset in offsets:
            if self.ordering.accept(TARGET, pub(offset)):
                self.deliver(TARGET, pub(offset))

    async def until(self, count: int) -> None:
        async with asyncio.timeout(20):
            while len(self.delivered) < count:
                self.changed.clear()
                await self.changed.wait()


async def test_in_order_and_duplicates_dropped() -> None:
    world = World(range(1, 4))
    world.offer(1, 2, 2, 1, 3)
    assert world.delivered == [1, 2, 3]


async def test_a_swap_is_put_back_in_order() -> None:
    world = World(range(1, 4))
    world.offer(1, 3, 2)
    await world.until(3)
    assert world.delivered == [1, 2, 3]
    assert world.lost == []


async def test_a_gap_is_filled_from_the_stream() -> None:
    world = World(range(1, 7))
    world.ordering.seed(ROOM, Position("e", 0))
    world.offer(4, 5)
    await world.until(5)
    world.offer(6, 3)
    assert world.delivered == [1, 2, 3, 4, 5, 6]
    assert world.lost == []


async def test_a_gap_the_stream_lost_closes_the_room() -> None:
    world = World(range(4, 6))  # 2 and 3 expired
    world.offer(1, 4, 5)
    await world.until(3)
    assert world.delivered == [1, 4, 5]
    assert world.lost == [TARGET]


async def test_a_new_epoch_starts_over() -> None:
    world = World(range(1, 3))
    world.offer(1, 2)
    assert world.ordering.accept(TARGET, pub(1, "new"))


async def test_a_new_epoch_first_seen_further_on_is_read_from_its_start() -> None:
    # A Cluster failover started a new stream, and its first publications were published
    # while this instance was resubscribing: they are read, not skipped.
    world = World(range(1, 4))
    world.offer(1, 2)
    world.epoch = "new"
    assert not world.ordering.accept(TARGET, pub(3, "new"))
    await world.until(5)
    assert world.delivered == [1, 2, 1, 2, 3]
    assert world.lost == []


async def test_catching_up_reads_what_was_published_while_not_listening() -> None:
    # The subscription was lost and came back; the room's last publications were
    # published meanwhile and no later one arrives to show the gap.
    world = World(range(1, 5))
    world.offer(1, 2)
    world.ordering.catch_up(ROOM, Position("e", 4))
    await world.until(4)
    assert world.delivered == [1, 2, 3, 4]
    world.offer(4, 5)  # the live copy of 4 is a duplicate
    assert world.delivered == [1, 2, 3, 4, 5]
    assert world.lost == []


async def test_catching_up_with_a_new_stream_reads_it_from_its_start() -> None:
    world = World(range(1, 3))
    world.offer(1, 2)
    world.epoch = "new"
    world.ordering.catch_up(ROOM, Position("new", 2))
    await world.until(4)
    assert world.delivered == [1, 2, 1, 2]


async def test_catching_up_with_nothing_missed_reads_nothing() -> None:
    world = World(range(1, 3))
    world.offer(1, 2)
    world.ordering.catch_up(ROOM, Position("e", 2))
    world.ordering.catch_up(ROOM, Position("other", 0))  # a new, empty stream
    world.offer(3)
    assert world.delivered == [1, 2, 3]
