"""Receiver-side order of a room's publications on this instance.

Redis runs one room's appends one after the other, so the offsets of a room arrive in
order, each once, unless pub/sub lost some (a listener reconnect, a slow subscriber cut
off by Redis) or two of this instance's own appends came back in swapped order. Per
room this keeps the last offset delivered: the next one is delivered; one at or below
it is a duplicate and dropped; after a jump the later ones are held, the missing ones
read from the stream and everything delivered in order. What the stream no longer
has cannot be repaired: the room's local connections are closed with 3010 so they
reconnect and recover (or learn they cannot).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from roomcast import metrics
from roomcast.broker.base import Target, ToRoom, ToUser
from roomcast.exceptions import BrokerError
from roomcast.history.base import Position, Publication, Slice, position_of
from roomcast.logs import log_event
from roomcast.supervisor import spawn
from roomcast.types import PERSONAL_PREFIX, RoomId, UserId, personal_room

_log = logging.getLogger("roomcast.history.ordering")

#: Seconds a jump may wait for the missing publications to arrive on their own (two of
#: this instance's appends answered in swapped order) before the stream is read.
GRACE = 0.05
#: Rooms whose last offset is remembered (the oldest are forgotten first).
MAX_ROOMS = 100_000

Reader = Callable[[RoomId, int, int], Awaitable[Slice | None]]
Deliver = Callable[[Target, bytes], int]


@dataclass(slots=True)
class _Room:
    epoch: str
    last: int
    #: Publications after a jump, by offset, until the gap is filled.
    held: dict[int, tuple[Target, bytes]] = field(default_factory=dict)


class Ordering:
    """Delivers each room's publications once and in offset order.

    Args:
        read: reads a room's publications after an offset (at most ``limit``).
        deliver: hands a publication to the local connections.
        lost: closes a room's local connections (the gap cannot be filled).
    """

    def __init__(self, read: Reader, deliver: Deliver,
                 lost: Callable[[Target], None]) -> None:
        self._read = read
        self._deliver = deliver
        self._lost = lost
        self._rooms: dict[RoomId, _Room] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def accept(self, target: Target, payload: bytes) -> bool:
        """Whether to deliver ``payload`` now (False: dropped, or held for later)."""
        position = position_of(payload)
        room = _stream_room(target)
        if position is None or room is None:
            return True  # not from a stream: live only
        state = self._rooms.get(room)
        if state is None or (state.epoch != position.epoch and position.offset <= 1):
            # A first publication, or a new stream from its start: nothing to compare with.
            self._remember(room, _Room(position.epoch, position.offset))
            return True
        if state.epoch != position.epoch:
            # A new stream (Redis lost the room, or a Cluster failover) seen from further
            # on: what came before in it was missed here, and is read from the stream.
            state = _Room(position.epoch, 0)
            self._remember(room, state)
        offset = position.offset
        if offset <= state.last or offset in state.held:
            metrics.HISTORY_DUPLICATES.inc()
            return False
        if offset == state.last + 1 and not state.held:
            state.last = offset
            return True
        if not state.held:
            spawn("history-gap", self._fill(room, state), self._tasks)
        state.held[offset] = (target, payload)
        return False

    def seed(self, room: RoomId, top: Position) -> None:
        """A connection joined ``room`` at ``top``: the first local member tells where
        this instance's delivery starts (so a loss right after is seen as a gap)."""
        state = self._rooms.get(room)
        if state is None or (state.epoch != top.epoch and not state.held):
            self._remember(room, _Room(top.epoch, top.offset))

    def catch_up(self, room: RoomId, top: Position) -> None:
        """The stream's top, read after this instance's subscription came back: what was
        published while it was not listening is read from the stream and delivered now,
        not when the room's next publication shows the gap (a quiet room may have none)."""
        state = self._rooms.get(room)
        if state is None or state.held or top.offset == 0:
            return  # nothing known here, a repair already on its way, or nothing stored
        if state.epoch != top.epoch:
            state = _Room(top.epoch, 0)  # a new stream: all of it was missed here
            self._remember(room, state)
        if top.offset > state.last:
            spawn("history-catch-up", self._read_up_to(room, state, top.offset), self._tasks)

    async def _read_up_to(self, room: RoomId, state: _Room, top: int) -> None:
        try:
            page = await self._read(room, state.last, top - state.last)
        except BrokerError as exc:
            log_event(_log, "history_gap_read_failed", logging.WARNING, room=room,
                      error=str(exc))
            return
        if page is None or page.top.epoch != state.epoch:
            return
        target = _target_of(room, state)
        repaired = 0
        for publication in page.publications:
            if publication.offset == state.last + 1:  # unless a live one came first
                state.last = publication.offset
                state.held.pop(publication.offset, None)
                self._deliver(target, publication.payload)
                repaired += 1
        self._release(state)
        if repaired:
            metrics.HISTORY_GAPS_REPAIRED.inc(repaired)
            log_event(_log, "history_gap_repaired", room=room, publications=repaired)
        if state.last < top and not state.held:
            # Gone from the stream (expired, trimmed): these connections missed it.
            metrics.HISTORY_GAPS_UNREPAIRED.inc()
            log_event(_log, "history_gap_unrepaired", logging.WARNING, room=room,
                      after=state.last, next=top)
            self._lost(target)
            state.last = top

    def delivered(self, room: RoomId) -> int:
        """The last offset of ``room`` delivered here (-1: none known)."""
        state = self._rooms.get(room)
        return -1 if state is None else state.last

    def forget(self, room: RoomId) -> None:
        """The room has no local member left: its next publication starts afresh."""
        state = self._rooms.get(room)
        if state is not None and not state.held:
            del self._rooms[room]

    async def _fill(self, room: RoomId, state: _Room) -> None:
        await asyncio.sleep(GRACE)
        while state.held:
            self._release(state)
            if not state.held:
                return
            first_held = min(state.held)
            missing = first_held - state.last - 1
            found: list[Publication] = []
            try:
                page = await self._read(room, state.last, missing)
                if page is not None and page.top.epoch == state.epoch:
                    found = page.publications
            except BrokerError as exc:
                log_event(_log, "history_gap_read_failed", logging.WARNING, room=room,
                          error=str(exc))
            target = _target_of(room, state)
            repaired = 0
            for publication in found:
                if publication.offset == state.last + 1:
                    state.last = publication.offset
                    state.held.pop(publication.offset, None)
                    self._deliver(target, publication.payload)
                    repaired += 1
            if repaired:
                metrics.HISTORY_GAPS_REPAIRED.inc(repaired)
                log_event(_log, "history_gap_repaired", room=room, publications=repaired)
            if state.held and min(state.held) > state.last + 1:
                # Gone from the stream: these connections missed something for good.
                metrics.HISTORY_GAPS_UNREPAIRED.inc()
                log_event(_log, "history_gap_unrepaired", logging.WARNING, room=room,
                          after=state.last, next=min(state.held))
                self._lost(target)
                state.last = min(state.held) - 1

    def _release(self, state: _Room) -> None:
        """Deliver the held publications that now follow in order."""
        while (nxt := state.held.pop(state.last + 1, None)) is not None:
            state.last += 1
            self._deliver(*nxt)

    def _remember(self, room: RoomId, state: _Room) -> None:
        self._rooms.pop(room, None)
        if len(self._rooms) >= MAX_ROOMS:
            oldest = next(iter(self._rooms))
            if not self._rooms[oldest].held:
                del self._rooms[oldest]
        self._rooms[room] = state


def _stream_room(target: Target) -> RoomId | None:
    if isinstance(target, ToRoom):
        return target.room
    if isinstance(target, ToUser):
        return personal_room(target.user_id)
    return None


def _target_of(room: RoomId, state: _Room) -> Target:
    """Whom a publication read from the stream goes to (a held one tells, if any)."""
    for target, _ in state.held.values():
        return target
    if room.startswith(PERSONAL_PREFIX):
        return ToUser(UserId(room.removeprefix(PERSONAL_PREFIX)))
    return ToRoom(room)
