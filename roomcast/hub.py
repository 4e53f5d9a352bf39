"""The hub: this instance's live connections and rooms, and fan-out to them.

Every method is a plain ``def``: on one event loop, state cannot change in the
middle of a broadcast. I/O (broker, stores, registry) happens in ``node``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from roomcast import metrics
from roomcast.broker.base import Target, ToAll, ToConnection, ToRoom, ToUser
from roomcast.logs import Throttled
from roomcast.membership.base import Group
from roomcast.protocol.frames import deflated_text_frame, text_frame
from roomcast.types import ConnId, GroupId, RoomId, UserId
from roomcast.writer import ConnectionWriter, RoomWriters, fan_out, fan_out_room

_oversize = Throttled(logging.getLogger("roomcast.hub"), "oversize_publication_dropped",
                      logging.ERROR)


class Closer(Protocol):
    """Closes a connection's socket once; provided by the transport layer."""

    def __call__(self, code: int, reason: str) -> None: ...

    async def wait(self) -> None: ...


@dataclass(eq=False, slots=True)
class LocalConnection:
    """One WebSocket connection on this instance."""

    id: ConnId
    user_id: UserId
    character_id: int | None
    character_name: str
    scopes: frozenset[str]
    created_at: str
    writer: ConnectionWriter
    #: Groups the user may be in right now (store + token), by id.
    groups: dict[GroupId, Group] = field(default_factory=dict)
    #: The groups its token's ``groups`` claim names (kept until it reconnects).
    token_groups: frozenset[GroupId] = frozenset()
    #: Rooms this connection receives.
    rooms: set[RoomId] = field(default_factory=set)
    last_seen: float = 0.0
    #: When its last frame other than a pong arrived (loop time): a client heard from
    #: since the previous liveness pass (a heartbeat, a message) is not pinged.
    last_spoke: float = 0.0
    #: Its token's ``exp`` and ``iat`` (seconds since the epoch) and id; a refresh replaces them.
    expires_at: float = float("inf")
    issued_at: float | None = None
    token_id: str = ""
    #: Closes the socket (code, reason); set by the transport layer.
    closer: Closer | None = None
    #: The permessage-deflate window bits it negotiated (0: it gets plain frames).
    deflate: int = 0

    def close(self, code: int, reason: str) -> None:
        """Ask the transport to close this connection (idempotent there)."""
        if self.closer is not None:
            self.closer(code, reason)

    def send(self, payload: bytes) -> bool:
        """Queue one encoded envelope for this connection only."""
        return self.writer.enqueue(text_frame(payload))


class Hub:
    """Indexes local connections by id, user and room, both ways."""

    def __init__(self, *, max_frame_bytes: int | None = None) -> None:
        #: A frame above this (the write-queue limit) would cut every recipient: dropped.
        self.max_frame_bytes = max_frame_bytes
        self.connections: dict[ConnId, LocalConnection] = {}
        self.users: dict[UserId, dict[ConnId, LocalConnection]] = {}
        self.rooms: dict[RoomId, dict[ConnId, LocalConnection]] = {}
        self.room_names: dict[RoomId, str] = {}
        #: Each room's writers (and their transports), built at its first message after
        #: a change of members: the one-message-per-room loop then reads nothing per
        #: recipient but the transport (a dict of connections cost two lookups more each).
        self._writers: dict[RoomId, RoomWriters] = {}
        #: Connections here that negotiated permessage-deflate (0: the plain fast path).
        self.deflating = 0

    def add(self, conn: LocalConnection) -> None:
        self.connections[conn.id] = conn
        self.users.setdefault(conn.user_id, {})[conn.id] = conn
        self.deflating += bool(conn.deflate)

    def remove(self, conn: LocalConnection) -> list[RoomId]:
        """Forget a connection; returns the rooms it was in."""
        if self.connections.pop(conn.id, None) is None:
            return []
        self.deflating -= bool(conn.deflate)
        user_conns = self.users.get(conn.user_id)
        if user_conns is not None:
            user_conns.pop(conn.id, None)
            if not user_conns:
                del self.users[conn.user_id]
        left = list(conn.rooms)
        for room in left:
            self.leave(conn, room)
        return left

    def join(self, conn: LocalConnection, room: RoomId, name: str) -> bool:
        """Put a connection in a room; False if it already was, or is not (or no longer) here.

        A connection removed while a membership move was under way must not become a
        member again: nothing would ever take it out.
        """
        if room in conn.rooms or self.connections.get(conn.id) is not conn:
            return False
        conn.rooms.add(room)
        self.rooms.setdefault(room, {})[conn.id] = conn
        self._writers.pop(room, None)
        self.room_names[room] = name
        return True

    def leave(self, conn: LocalConnection, room: RoomId) -> bool:
        """Take a connection out of a room; empty rooms disappear."""
        if room not in conn.rooms:
            return False
        conn.rooms.discard(room)
        self._writers.pop(room, None)
        members = self.rooms.get(room)
        if members is not None:
            members.pop(conn.id, None)
            if not members:
                del self.rooms[room]
                self.room_names.pop(room, None)
        return True

    def member_count(self, room: RoomId) -> int:
        members = self.rooms.get(room)
        return len(members) if members else 0

    def recipients(self, target: Target) -> Iterator[LocalConnection]:
        """The local connections a target addresses."""
        if isinstance(target, ToRoom):
            members = self.rooms.get(target.room)
            if members:
                exclude = target.exclude
                yield from (c for c in members.values() if c.id != exclude)
        elif isinstance(target, ToUser):
            yield from self.users.get(target.user_id, {}).values()
        elif isinstance(target, ToConnection):
            conn = self.connections.get(target.conn_id)
            if conn is not None:
                yield conn
        elif isinstance(target, ToAll):
            yield from self.connections.values()

    def deliver(
        self, target: Target, payload: bytes, skip: Collection[ConnId] = ()
    ) -> int:
        """Frame ``payload`` once and write or queue the same bytes for every recipient
        (but those in ``skip``)."""
        frame = text_frame(payload)
        if self.max_frame_bytes is not None and len(frame) > self.max_frame_bytes:
            metrics.PUBLICATIONS_DROPPED.labels("oversize").inc()
            _oversize(time.monotonic(), size=len(frame), limit=self.max_frame_bytes,
                      target=type(target).__name__)
            return 0
        if self.deflating:
            return self._deliver_mixed(target, payload, frame, skip)
        if skip:
            return fan_out(
                [c.writer for c in self.recipients(target) if c.id not in skip], frame)
        if isinstance(target, ToRoom) and target.exclude is None:
            # The hot path: one room, everyone in it.
            room = target.room
            writers = self._writers.get(room)
            if writers is None:
                members = self.rooms.get(room)
                if not members:
                    return 0
                writers = self._writers[room] = RoomWriters(
                    [c.writer for c in members.values()])
            return fan_out_room(writers, frame)
        return fan_out([c.writer for c in self.recipients(target)], frame)

    def _deliver_mixed(
        self, target: Target, payload: bytes, frame: bytes, skip: Collection[ConnId]
    ) -> int:
        """Some connections here take compressed frames: each variant is built once."""
        by_bits: dict[int, list[ConnectionWriter]] = {}
        for conn in self.recipients(target):
            if conn.id not in skip:
                by_bits.setdefault(conn.deflate, []).append(conn.writer)
        return sum(
            fan_out(writers, deflated_text_frame(payload, bits) if bits else frame)
            for bits, writers in by_bits.items()
        )
