"""The node: this instance's hub, broker, membership store and registry, together.

It is the broker's handler (remote publications land in ``handle_publication``)
and the one place where a room change turns into events for clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any

from roomcast import metrics
from roomcast.auth.denials import Denials, MemoryDenials
from roomcast.broker.base import (
    Broker,
    ControlCommand,
    Disconnect,
    MembershipChanged,
    PresenceChanged,
    RoomsChanged,
    Target,
    TokenRefreshed,
    ToRoom,
)
from roomcast.exceptions import BrokerError, BrokerUnavailable, StoreError
from roomcast.history.base import Position
from roomcast.history.memory import MemoryHistory
from roomcast.history.ordering import Ordering
from roomcast.history.policy import HistoryPolicy
from roomcast.history.recovery import JoinState
from roomcast.history.service import History
from roomcast.hub import Hub, LocalConnection
from roomcast.keylock import KeyedLock
from roomcast.lifetime import Lifetimes
from roomcast.logs import log_event
from roomcast.membership.base import Group, MembershipStore, shared_group
from roomcast.presence.base import PresenceStore
from roomcast.presence.memory import MemoryPresenceStore
from roomcast.presence.tracker import PresenceTracker
from roomcast.protocol import messages
from roomcast.protocol.codes import CloseCode
from roomcast.registry.base import Registry
from roomcast.roomevents import CoalescedUpdates, RoomEventBudget
from roomcast.supervisor import spawn, supervise
from roomcast.types import GroupId, RoomId, UserId, group_room, group_room_name, personal_room

_log = logging.getLogger("roomcast.node")
#: Seconds an emptied room keeps its per-room channel (sharded mode), as centrifuge does.
UNSUBSCRIBE_DELAY = 5.0
#: Closes counted in roomcast_token_closes (expiry is counted by lifetime.py).
_TOKEN_CLOSES: dict[int, str] = {CloseCode.REVOKED: "revoked", CloseCode.KICKED: "kicked"}


class Node:
    """One roomcast instance."""

    def __init__(
        self,
        *,
        server_id: str,
        broker: Broker,
        store: MembershipStore,
        registry: Registry,
        hub: Hub,
        room_event_threshold: int = 100,
        room_event_interval: float = 1.0,
        room_event_rate: float = 10.0,
        presence: PresenceStore | None = None,
        presence_ttl: float = 15.0,
        presence_grace: float = 5.0,
        lifetimes: Lifetimes | None = None,
        denials: Denials | None = None,
        history: History | None = None,
    ) -> None:
        self.server_id = server_id
        self.hub = hub
        self.broker = broker
        self.store = store
        self.registry = registry
        #: Expiry warnings and closes of local connections (off unless given).
        self.lifetimes = lifetimes or Lifetimes(enabled=False)
        #: Revocations and sticky kicks (a kick's token ban is written where it lives).
        self.denials: Denials = denials or MemoryDenials()
        self.messages_processed = 0
        #: Publications made through this instance, and frames queued to its connections
        #: by any instance's publications (the live dashboard's rates; sums are cluster-wide).
        self.messages_published = 0
        self.deliveries = 0
        #: Sees every publication this instance handles (the admin dashboard's room tail).
        self.tap: Callable[[Target, bytes], None] | None = None
        #: Also called with every publication delivered here (membership sync); must not block.
        self.observers: list[Callable[[Target, bytes], None]] = []
        #: Applies another instance's (or the cookie route's) token refresh (refresh.py).
        self.on_token_refreshed: Callable[[TokenRefreshed], Awaitable[None]] | None = None
        #: The Go gateway's status counters: connections accepted, the latest one's time.
        self.connections_accepted = 0
        self.last_connection_at: str | None = None
        self._threshold = room_event_threshold
        self._room_events = RoomEventBudget(room_event_rate)
        self._room_updates = CoalescedUpdates(
            room_event_interval, count=self._member_count, deliver=self._members_update_here,
            report=self._report_changed,
        )
        self._catch_up_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.presence = PresenceTracker(
            presence or MemoryPresenceStore(),
            hub=hub,
            publish=broker.publish_control,
            rooms_of=self.rooms_of_user,
            ttl=presence_ttl,
            grace=presence_grace,
            alone=broker.alone,
        )
        self._user_locks: KeyedLock[UserId] = KeyedLock()
        #: Streams of rooms with history (off unless given).
        self.history = history or History(MemoryHistory(), HistoryPolicy.off())
        #: Offsets checked on arrival, gaps repaired (streams shared between instances).
        self.ordering = Ordering(self.history.missing, self._deliver, self._insufficient_state) \
            if self.history.shared else None

    def user_lock(self, user_id: UserId) -> AbstractAsyncContextManager[None]:
        """Serializes what changes the rooms of one user's connections.

        Opening a connection (from reading the user's groups to the last ``room_joined``),
        applying a membership change and a client's own join or leave hold it, so each
        sees the others' complete result: no membership change is missed by a connection
        that was opening, and the events of one connection come in a consistent order.
        """
        return self._user_locks.hold(user_id)

    async def start(self) -> None:
        await self.denials.open()
        await self.store.open()
        await self.registry.start()
        await self.history.start()
        await self.broker.start(self)
        await self.presence.start()
        if self.ordering is not None:
            self._catch_up_task = supervise("history-catch-up", self._catch_up)

    async def close(self) -> None:
        if self._catch_up_task is not None:
            self._catch_up_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._catch_up_task
        await self._room_updates.close()
        self.lifetimes.close()
        await self.presence.close()
        await self.broker.close()
        await self.registry.close()
        await self.denials.close()
        await self.store.close()
        await self.history.close()

    async def _catch_up(self) -> None:
        """Each time the broker's subscription comes back, read the tops of the local
        rooms' streams: what was published while this instance was not listening is
        delivered now (a failover, a Redis restart), not at the room's next publication."""
        wait_health: Callable[[bool], Awaitable[None]] | None = getattr(
            self.broker, "wait_health", None)
        if self.ordering is None or wait_health is None:
            return
        while True:
            await wait_health(False)
            await wait_health(True)
            for room in list(self.hub.rooms):
                try:
                    found = await self.history.read(room, limit=0)
                except BrokerError as exc:
                    log_event(_log, "history_catch_up_failed", logging.WARNING, room=room,
                              error=str(exc))
                    continue
                if found is not None and room in self.hub.rooms:
                    self.ordering.catch_up(room, found.top)

    # -- broker handler -------------------------------------------------------

    def handle_publication(self, target: Target, payload: bytes) -> int:
        if self.ordering is not None and not self.ordering.accept(target, payload):
            return 0  # a duplicate, or held until a gap before it is filled
        return self._deliver(target, payload)

    def _deliver(self, target: Target, payload: bytes) -> int:
        for observe in self.observers:
            observe(target, payload)
        handover = self.history.handover
        joining = handover.offer(target, payload) if handover.active else None
        if joining:
            # Connections joining the room get it from their handover buffer, in order.
            delivered = self.hub.deliver(target, payload, skip=joining)
        else:
            delivered = self.hub.deliver(target, payload)
        self.messages_processed += 1
        self.deliveries += delivered
        if self.tap is not None:
            self.tap(target, payload)
        metrics.DELIVERIES.inc(delivered)
        return delivered

    def _insufficient_state(self, target: Target) -> None:
        """A gap in a room's stream that cannot be filled: its local connections
        reconnect and recover (or are told they cannot)."""
        for conn in list(self.hub.recipients(target)):
            conn.close(CloseCode.INSUFFICIENT_STATE, "insufficient state")

    async def handle_control(self, command: ControlCommand) -> None:
        if isinstance(command, MembershipChanged):
            await self._apply_membership(command)
        elif isinstance(command, Disconnect):
            await self._disconnect(command)
        elif isinstance(command, PresenceChanged):
            self.presence.apply(command)
        elif isinstance(command, TokenRefreshed) and self.on_token_refreshed is not None:
            await self.on_token_refreshed(command)
        elif isinstance(command, RoomsChanged) and command.server_id != self.server_id:
            self._room_updates.changed_elsewhere(r for r in command.rooms if r in self.hub.rooms)

    async def _disconnect(self, command: Disconnect) -> None:
        label = _TOKEN_CLOSES.get(command.code)
        for conn in list(self.hub.connections.values()):
            if conn.id != command.conn_id and conn.user_id != command.user_id:
                continue
            if command.ban_tokens_until is not None:
                # Before the close: the client's reconnect must find the ban in place.
                try:
                    await self.denials.ban("token", conn.token_id, command.ban_tokens_until)
                except StoreError as exc:
                    log_event(_log, "ban_failed", logging.ERROR, conn=conn.id, error=str(exc))
            if label is not None:
                metrics.TOKEN_CLOSES.labels(label).inc()
            conn.close(command.code, command.reason)

    # -- publishing -----------------------------------------------------------

    async def publish(
        self, target: Target, envelope: dict[str, Any], *, stored: bool = True
    ) -> int:
        """Encode once and publish; returns local recipients.

        With ``stored`` (app messages, not room events), a publication to a room or user
        with history goes through the room's stream: the result then has a ``position``.

        Raises:
            BrokerError: other instances could not be reached (local delivery happened).
        """
        metrics.by_type(metrics.MESSAGES_SENT, envelope["type"]).inc()
        self.messages_published += 1
        stream = self.history.stream_of(target) if stored else None
        try:
            if stream is not None:
                return await self.history.publish(
                    target, envelope, *stream, deliver=self.handle_publication
                )
            return await self.broker.publish(target, messages.encode(envelope))
        except BrokerError:
            metrics.BROKER_PUBLISH_ERRORS.inc()
            raise

    async def _publish_quietly(self, target: Target, envelope: dict[str, Any]) -> None:
        """Publish an event whose loss on other instances must not fail the caller.

        Events describe the room, not the app's data: no stream, no offset.
        """
        try:
            await self.publish(target, envelope, stored=False)
        except BrokerError as exc:
            log_event(
                _log, "event_publish_failed", logging.WARNING, type=envelope["type"], error=str(exc)
            )

    # -- connections and rooms ----------------------------------------------

    async def entitled_groups(
        self, user_id: UserId, token_groups: tuple[Group, ...]
    ) -> list[Group]:
        """The user's groups: the membership store's, plus the token's ``groups`` claim."""
        groups = {g.id: g for g in token_groups}
        groups.update((g.id, g) for g in await self.store.groups_of(user_id))
        return [shared_group(k, groups[k].name) for k in sorted(groups)]

    def welcome(self, conn: LocalConnection) -> None:
        """The first message of every connection (before it is in the hub or any room)."""
        conn.send(messages.encode(messages.welcome(conn.id, conn.user_id)))

    async def open_connection(
        self, conn: LocalConnection, recover: tuple[str | None, dict[str, Position]] | None = None,
        *, welcomed: bool = False,
    ) -> None:
        """Register a connection, greet it and put it in its rooms.

        ``recover`` is the id and positions of the connection's ``recover`` message: it
        is acknowledged (naming the rooms it is not a member of), and each room joined
        with a position recovers from it.

        The caller holds :meth:`user_lock` since it read the user's groups.
        """
        self.hub.add(conn)
        metrics.CONNECTIONS_ACTIVE.inc()
        metrics.CONNECTIONS_TOTAL.inc()
        self.connections_accepted += 1
        self.last_connection_at = conn.created_at
        if not welcomed:
            self.welcome(conn)
        rooms = {personal_room(conn.user_id): f"User: {conn.character_name}"}
        rooms.update((group_room(g.id), group_room_name(g.name)) for g in conn.groups.values())
        positions: dict[str, Position] = {}
        if recover is not None:
            message_id, positions = recover
            if message_id is not None:
                ignored = sorted(room for room in positions if room not in rooms)
                conn.send(messages.encode(
                    messages.ack(message_id, action_requested="recover", ignored=ignored)
                ))
        entered: list[tuple[RoomId, str]] = []
        try:
            for room, name in rooms.items():
                if await self._enter(conn, RoomId(room), name):
                    entered.append((RoomId(room), name))
            # Registered once in its rooms (one write, not one per room), before they are
            # counted; unless it closed meanwhile, which the registry was told already.
            if self.hub.connections.get(conn.id) is conn:
                self.registry.connection_opened(conn)
            counted = [(room, name, *await self._counted(conn, room, positions.get(room)))
                       for room, name in entered]
            # Every room_joined at once, then what each room held back: no message of any
            # room comes before the last room_joined.
            held = [(room, count, self._room_joined(conn, room, name, count, state))
                    for room, name, count, state in counted]
        except BaseException:
            for room, _ in entered:
                self.history.handover.cancel(conn.id, room)
            raise
        for _, _, frames in held:
            for frame in frames or ():
                conn.send(frame)
        for room, count, frames in held:
            if frames is not None:
                await self._announce(room, "member_joined", conn, count)
        await self.presence.connection_opened(conn)
        self.lifetimes.track(conn)

    async def close_connection(self, conn: LocalConnection) -> None:
        """Forget a closed connection and tell the rooms it was in."""
        self.lifetimes.forget(conn)
        left = self.hub.remove(conn)
        self._unsubscribe_if_empty(left)
        metrics.CONNECTIONS_ACTIVE.dec()
        self.registry.connection_closed(conn)
        await self.presence.connection_closed(conn)
        for room in left:
            await self._announce(room, "member_left", conn)

    async def join_room(
        self, conn: LocalConnection, room: RoomId, name: str, since: Position | None = None
    ) -> bool:
        """Add a connection to a room with its ``room_joined`` and ``room_update`` events.

        In a room with history, ``room_joined`` carries the stream's epoch and offset;
        with ``since`` (the client's last position) it also says whether the missed
        publications could be recovered, and they follow it. In every room, live
        publications are held back from the moment the connection is a member until
        then (the handover), so nothing is missed, sent twice or sent before
        ``room_joined``.

        A connection closed meanwhile is not added (the hub refuses it).
        """
        if not await self._enter(conn, room, name):
            return False
        self.registry.rooms_changed(conn)
        try:
            count, state = await self._counted(conn, room, since)
        except BaseException:
            self.history.handover.cancel(conn.id, room)
            raise
        frames = self._room_joined(conn, room, name, count, state)
        if frames is not None:
            for frame in frames:
                conn.send(frame)
            await self._announce(room, "member_joined", conn, count)
        return True

    async def _enter(self, conn: LocalConnection, room: RoomId, name: str) -> bool:
        """Make the connection a member, subscribed to the room, its live publications
        held back until its ``room_joined``; False when it closed meanwhile."""
        handover = self.history.handover
        handover.begin(conn.id, room)
        try:
            if not self.hub.join(conn, room, name):
                handover.cancel(conn.id, room)
                return False
            if self.hub.member_count(room) == 1:
                await self.broker.subscribe_room(room)
        except BaseException:
            handover.cancel(conn.id, room)
            raise
        return True

    async def _counted(
        self, conn: LocalConnection, room: RoomId, since: Position | None
    ) -> tuple[int, JoinState]:
        """The member count and stream state an entered connection's ``room_joined`` gives
        (the caller ends the room's handover if this fails)."""
        retention = self.history.policy.for_room(room)
        # Counted once our write is in: of two members joining on two instances at once,
        # the later write's count then sees the other, who hears of it.
        await self.registry.written(conn)
        count = await self._member_count(room)
        state = JoinState(None) if retention is None else \
            await self.history.join_state(room, retention, since)
        if self.ordering is not None and state.top is not None:
            self.ordering.seed(room, state.top)
        return count, state

    def _room_joined(
        self, conn: LocalConnection, room: RoomId, name: str, count: int, state: JoinState
    ) -> list[bytes] | None:
        """Send ``room_joined``; the frames the handover held, to send right after it (no
        await in between: live delivery has resumed). None when the connection closed."""
        delivered = None if self.ordering is None else self.ordering.delivered(room)
        frames = self.history.handover.finish(conn.id, room, state.replay, state.after,
                                              delivered=delivered)
        if self.hub.connections.get(conn.id) is not conn:
            return None  # its member_left is out: a member_joined would lie
        kind = "personal" if room == personal_room(conn.user_id) else "group"
        conn.send(messages.encode(
            messages.room_joined(room, kind, name, count, **state.fields())
        ))
        return frames

    async def leave_room(self, conn: LocalConnection, room: RoomId, reason: str) -> bool:
        """Take a connection out of a room with its ``room_left`` and ``room_update`` events."""
        if not self.hub.leave(conn, room):
            return False
        self._unsubscribe_if_empty([room])
        self.registry.rooms_changed(conn)
        conn.send(messages.encode(messages.room_left(room, reason)))
        await self._announce(room, "member_left", conn)
        return True

    async def rooms_of_user(self, user_id: UserId) -> set[RoomId]:
        """A user's rooms, cluster-wide: those of their connections and of their groups."""
        try:
            groups = await self.store.groups_of(user_id)
        except StoreError as exc:
            raise BrokerUnavailable(f"membership store unavailable: {exc}") from None
        rooms = {personal_room(user_id), *(group_room(g.id) for g in groups)}
        for info in await self.registry.connections(user_id=user_id):
            rooms.update(RoomId(r) for r in info.rooms)
        return rooms

    async def _member_count(self, room: RoomId) -> int:
        """Cluster-wide members of a room; this instance's alone while the registry is down."""
        try:
            return await self.registry.count(ToRoom(room))
        except BrokerError:
            return self.hub.member_count(room)

    def _unsubscribe_if_empty(self, rooms: list[RoomId]) -> None:
        """Drop per-room channels of rooms left empty, after a delay (rejoins are common)."""
        empty = [room for room in rooms if room not in self.hub.rooms]
        if empty:
            asyncio.get_running_loop().call_later(
                UNSUBSCRIBE_DELAY, lambda: self._spawn(self._unsubscribe(empty))
            )

    async def _unsubscribe(self, rooms: list[RoomId]) -> None:
        for room in rooms:
            if room not in self.hub.rooms:
                self.history.handover.forget(room)
                if self.ordering is not None:
                    self.ordering.forget(room)
                await self.broker.unsubscribe_room(room)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        spawn("room-unsubscribe", coro, self._background)

    async def _announce(
        self, room: RoomId, action: str, conn: LocalConnection, count: int | None = None
    ) -> None:
        """``room_update`` to the other members, coalesced in big rooms."""
        if count is not None and count <= (1 if action == "member_joined" else 0):
            return  # nobody else to tell (checked first: it takes no event budget)
        if self.hub.member_count(room) > self._threshold or not self._room_events.take(room):
            # N joins into one room would cost N^2/2 frames, and join/leave spam as many as
            # it likes: one event per interval instead.
            self._room_updates.changed(room)
            return
        if count is None:
            await self.registry.written(conn)  # our change first (see _counted)
            count = await self._member_count(room)
        if count <= (1 if action == "member_joined" else 0):
            return  # nobody else to tell (a user's first connection, the last one leaving)
        event = messages.room_update(room, action, count, conn.id, conn.user_id)
        await self._publish_quietly(ToRoom(room, exclude=conn.id), event)

    def _members_update_here(self, room: RoomId, count: int) -> None:
        """The coalesced update, to this instance's members of the room only."""
        event = messages.room_update(room, "members", count)
        metrics.by_type(metrics.MESSAGES_SENT, event["type"]).inc()
        self.handle_publication(ToRoom(room), messages.encode(event))

    async def _report_changed(self, rooms: tuple[RoomId, ...]) -> None:
        if self.broker.alone:
            return
        try:
            await self.broker.publish_control(RoomsChanged(self.server_id, rooms))
        except BrokerError as exc:
            log_event(_log, "event_publish_failed", logging.WARNING, type="rooms_changed",
                      error=str(exc))

    # -- memberships ------------------------------------------------------------

    async def change_membership(
        self, user_id: UserId, group_id: GroupId, name: str | None, joined: bool
    ) -> bool:
        """Change the store and move every live connection of the user, cluster-wide.

        Returns False when nothing changed (the call is idempotent, no events sent).
        """
        if joined:
            group_name = name or await self._known_group_name(group_id) or group_id
            if not await self.store.add(user_id, group_id, group_name):
                return False
        else:
            removed = await self.store.remove(user_id, group_id)
            if removed is None:
                # Not stored, but live connections may have it from their token's groups
                # claim: the removal applies to them too, until they reconnect.
                room = group_room(group_id)
                holders = [c for c in await self.registry.connections(user_id=user_id)
                           if room in c.rooms]
                if not holders:
                    return False
                known = (c.groups.get(group_id) for c in self.hub.users.get(user_id, {}).values())
                group_name = next((g.name for g in known if g is not None), group_id)
                await self.broker.publish_control(
                    MembershipChanged(user_id, group_id, group_name, False))
                return True
            group_name = removed.name
        await self.broker.publish_control(MembershipChanged(user_id, group_id, group_name, joined))
        return True

    async def _known_group_name(self, group_id: GroupId) -> str | None:
        """The name a group already has, so adding by bare id does not rename it."""
        for member in (await self.store.members(group_id))[:1]:
            for group in await self.store.groups_of(member):
                if group.id == group_id:
                    return group.name
        return None

    async def _apply_membership(self, change: MembershipChanged) -> None:
        room = group_room(change.group_id)
        event = messages.encode(
            messages.group_membership_change(
                change.user_id, change.group_id, change.group_name, change.joined
            )
        )
        async with self.user_lock(change.user_id):
            # A snapshot: connections may close during the awaits (join_room then refuses them).
            for conn in list(self.hub.users.get(change.user_id, {}).values()):
                await self._move(conn, change, room, event)

    async def _move(
        self, conn: LocalConnection, change: MembershipChanged, room: RoomId, event: bytes
    ) -> None:
        if change.joined:
            conn.groups[change.group_id] = Group(change.group_id, change.group_name)
            await self.join_room(conn, room, group_room_name(change.group_name))
        else:
            if change.group_id not in conn.groups and room not in conn.rooms:
                return  # nothing changes for this connection: nothing is sent
            conn.groups.pop(change.group_id, None)
            # A group of the token's claim too: gone until the connection's next token.
            conn.token_groups = conn.token_groups - {change.group_id}
            await self.leave_room(conn, room, "membership_removed")
        conn.send(event)
