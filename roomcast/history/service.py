"""History as the node uses it: which targets have a stream, stored publishing, joins.

One append per publication (the engine's round trip), never work per recipient.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from roomcast.broker.base import Target, ToRoom, ToUser
from roomcast.exceptions import BrokerError, BrokerUnavailable, DeliveryUnknown
from roomcast.history import snapshot
from roomcast.history.base import HistoryEngine, Position, Retention, Route, Slice
from roomcast.history.handover import Handover
from roomcast.history.memory import MemoryHistory
from roomcast.history.policy import HistoryPolicy
from roomcast.history.recovery import JoinState, decide
from roomcast.logs import log_event
from roomcast.protocol import messages
from roomcast.types import RoomId, personal_room

_log = logging.getLogger("roomcast.history")

#: Where an engine publishes an appended envelope to the other instances (None: nowhere,
#: a single instance), given the target and the envelope; may fill in routing fields.
Router = Callable[[Target, bytes], tuple[Route | None, bytes]]


class Published(int):
    """Local recipients of a publication, and where its room's stream stored it."""

    position: Position | None

    def __new__(cls, local: int, position: Position | None = None) -> Published:
        made = super().__new__(cls, local)
        made.position = position
        return made


def _no_route(target: Target, payload: bytes) -> tuple[Route | None, bytes]:
    return None, payload


class History:
    """The engine, the retention policy and the join handover of one instance."""

    def __init__(self, engine: HistoryEngine, policy: HistoryPolicy,
                 router: Router = _no_route, *, shared: bool = False,
                 snapshot: str | None = None) -> None:
        self.engine = engine
        self.policy = policy
        self.router = router
        self.handover = Handover()
        #: Streams shared by several instances (Redis): receivers check the offsets.
        self.shared = shared and policy.enabled
        #: Where the memory engine's streams are kept across a graceful restart.
        self.snapshot = snapshot

    def stream_of(self, target: Target) -> tuple[RoomId, Retention] | None:
        """The room whose stream a publication to ``target`` goes through, if any.

        Rooms, and users through their ``user:{id}`` room; never broadcasts or single
        connections (those have no stream to recover from).
        """
        if isinstance(target, ToRoom) and target.exclude is None:
            room = target.room
        elif isinstance(target, ToUser):
            room = personal_room(target.user_id)
        else:
            return None
        retention = self.policy.for_room(room)
        return None if retention is None else (room, retention)

    async def publish(
        self, target: Target, envelope: dict[str, Any], room: RoomId, retention: Retention,
        deliver: Callable[[Target, bytes], int],
    ) -> Published:
        """Append to the room's stream (publishing to the other instances in the same
        round trip), then deliver the stored envelope locally.

        Raises:
            BrokerUnavailable: the stream could not be written; the envelope was
                delivered locally without a position.
        """
        envelope.setdefault("room", room)
        route, payload = self.router(target, messages.encode(envelope))
        try:
            appended = await self.engine.append(
                room, payload, retention, message_id=envelope["id"], route=route
            )
        except DeliveryUnknown:
            deliver(target, payload)  # it may have been stored and published: not resent
            raise
        except BrokerError as exc:
            deliver(target, payload)
            raise BrokerUnavailable(f"history unavailable: {exc}") from exc
        return Published(deliver(target, appended.payload), appended.position)

    async def join_state(self, room: RoomId, retention: Retention,
                         since: Position | None) -> JoinState:
        """The stream position (and replay, for a ``since``) to give a joining connection;
        a stream that cannot be read just now answers no position (``recovered: false``)."""
        try:
            if since is None:
                return JoinState(await self.engine.top(room, retention))
            limit = self.policy.recovery_max + 1
            found = await self.engine.read(room, retention, since=since.offset, limit=limit)
        except BrokerError as exc:
            log_event(_log, "history_read_failed", logging.WARNING, room=room, error=str(exc))
            return JoinState(None, recovered=None if since is None else False)
        return decide(since, found, self.policy.recovery_max)

    async def missing(self, room: RoomId, since: int, limit: int) -> Slice | None:
        """Publications after ``since`` (for a receiver's gap), ``limit`` at most."""
        return await self.read(room, since=since, limit=limit)

    async def read(self, room: RoomId, *, since: int = 0, limit: int,
                   reverse: bool = False) -> Slice | None:
        """A page of the room's stream (None: the room keeps no history); ``limit`` is
        capped by the policy. Raises BrokerError when it cannot be read."""
        retention = self.policy.for_room(room)
        if retention is None:
            return None
        limit = max(0, min(limit, self.policy.history_limit, retention.size))
        return await self.engine.read(room, retention, since=since, limit=limit,
                                      reverse=reverse)

    async def start(self) -> None:
        """Load the memory engine's snapshot, if one is configured."""
        if self.snapshot is not None and isinstance(self.engine, MemoryHistory):
            snapshot.load(self.engine, self.snapshot)

    async def close(self) -> None:
        """Save the memory engine's snapshot (a graceful stop), then release the engine."""
        if self.snapshot is not None and isinstance(self.engine, MemoryHistory):
            try:
                snapshot.save(self.engine, self.snapshot)
            except OSError as exc:
                log_event(_log, "history_snapshot_failed", logging.ERROR, error=str(exc))
        await self.engine.close()
