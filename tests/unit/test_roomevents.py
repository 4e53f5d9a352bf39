"""Coalesced room updates: what each interval delivers here and reports to the others."""

from __future__ import annotations

import asyncio

from roomcast.roomevents import REPORT_CHUNK, CoalescedUpdates, RoomEventBudget
from roomcast.types import RoomId

TIMEOUT = 10.0


class Recorder:
    """The callbacks of a :class:`CoalescedUpdates`, recording what it does."""

    def __init__(self) -> None:
        self.delivered: list[tuple[RoomId, int]] = []
        self.reports: list[tuple[RoomId, ...]] = []
        self.counts: dict[RoomId, int] = {}
        self.flushed = asyncio.Event()
        #: How many deliveries make ``flushed`` set.
        self.expect = 1

    async def count(self, room: RoomId) -> int:
        return self.counts.get(room, 0)

    def deliver(self, room: RoomId, count: int) -> None:
        self.delivered.append((room, count))
        if len(self.delivered) >= self.expect:
            self.flushed.set()

    async def report(self, rooms: tuple[RoomId, ...]) -> None:
        self.reports.append(rooms)

    def updates(self) -> CoalescedUpdates:
        return CoalescedUpdates(0.01, count=self.count, deliver=self.deliver, report=self.report)

    async def delivered_total(self, n: int) -> None:
        """Wait until ``n`` updates were delivered in all."""
        self.expect = n
        if len(self.delivered) < n:
            self.flushed.clear()
            async with asyncio.timeout(TIMEOUT):
                await self.flushed.wait()


async def test_changes_here_are_delivered_once_and_reported() -> None:
    rec = Recorder()
    updates = rec.updates()
    rec.counts = {RoomId("group:a"): 7, RoomId("group:b"): 2}
    for room in ("group:a", "group:b", "group:a", "group:a"):
        updates.changed(RoomId(room))
    await rec.delivered_total(2)
    await updates.close()
    assert sorted(rec.delivered) == [("group:a", 7), ("group:b", 2)]
    assert rec.reports == [("group:a", "group:b")]


async def test_changes_elsewhere_are_delivered_and_not_reported_back() -> None:
    rec = Recorder()
    updates = rec.updates()
    rec.counts = {RoomId("group:a"): 3}
    updates.changed_elsewhere([RoomId("group:a")])
    updates.changed_elsewhere([RoomId("group:a")])
    await rec.delivered_total(1)
    assert rec.delivered == [("group:a", 3)]
    assert rec.reports == []
    # A room changed on both sides in one interval: one update, reported once.
    updates.changed_elsewhere([RoomId("group:a")])
    updates.changed(RoomId("group:a"))
    await rec.delivered_total(2)
    await updates.close()
    assert rec.delivered == [("group:a", 3), ("group:a", 3)]
    assert rec.reports == [("group:a",)]


async def test_reports_name_at_most_a_chunk_of_rooms_each() -> None:
    rec = Recorder()
    updates = rec.updates()
    rooms = [RoomId(f"group:{i:05}") for i in range(2 * REPORT_CHUNK + 1)]
    for room in rooms:
        updates.changed(room)
    await rec.delivered_total(len(rooms))
    await updates.close()
    assert [len(r) for r in rec.reports] == [REPORT_CHUNK, REPORT_CHUNK, 1]
    assert [room for report in rec.reports for room in report] == rooms


def test_the_budget_allows_bursts_then_the_rate() -> None:
    now = [0.0]
    budget = RoomEventBudget(2.0, clock=lambda: now[0])
    room = RoomId("group:a")
    assert [budget.take(room) for _ in range(5)] == [True] * 4 + [False]
    now[0] += 0.5  # one token back at 2 a second
    assert [budget.take(room) for _ in range(2)] == [True, False]
