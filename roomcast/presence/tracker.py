"""This instance's side of user presence: entries of its connections, subscriptions, events.

- A connection opening adds an ``online`` entry; a ``presence`` message replaces it;
  closing removes it after the grace period (a reconnect meanwhile shows nothing).
- Changes visible to others become :class:`~roomcast.broker.base.PresenceChanged`
  control commands; every instance hands them to its local subscribers of that user
  who share one of the user's rooms (the check is repeated on delivery, so leaving the
  last shared room ends the stream).
- Two background tasks: the refresher keeps this instance's entries alive in a shared
  store (they expire after ``ttl`` if it crashes), the sweeper turns expiries into
  offline events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from roomcast.broker.base import PresenceChanged
from roomcast.exceptions import BrokerError, Forbidden, ProtocolError
from roomcast.hub import Hub, LocalConnection
from roomcast.keylock import KeyedLock
from roomcast.logs import log_event
from roomcast.presence.base import Change, Entry, PresenceStore, UserPresence, now_ms
from roomcast.protocol import messages
from roomcast.protocol.codes import ErrorCode
from roomcast.supervisor import supervise
from roomcast.types import ConnId, RoomId, UserId, group_room, personal_room

_log = logging.getLogger("roomcast.presence")

#: Users one connection may follow at once.
MAX_SUBSCRIPTIONS = 1000
#: Remembered event versions (per user with local subscribers), to drop reordered ones.
_MAX_VERSIONS = 100_000

#: The metadata of every connection's first entry: one shared dict (entries are never
#: changed in place), not an empty one per idle connection.
_NO_METADATA: dict[str, Any] = {}

Publish = Callable[[PresenceChanged], Awaitable[None]]
RoomsOf = Callable[[UserId], Awaitable[set[RoomId]]]


def own_rooms(conn: LocalConnection) -> set[RoomId]:
    """The rooms a connection's user is entitled to (personal and groups)."""
    return {personal_room(conn.user_id), *(group_room(g) for g in conn.groups)}


class PresenceTracker:
    """Presence of this instance's connections and its subscribers' view of others.

    Args:
        store: where entries live (memory, or Redis for a cluster).
        hub: this instance's connections (refreshed every ``ttl / 3``).
        publish: sends a change to every instance, this one included.
        rooms_of: a user's rooms cluster-wide (for the shared-room check).
        ttl: seconds an entry outlives its instance.
        grace: seconds between the last connection closing and ``offline``.
        alone: this instance is the whole cluster: a change of a user nobody here
            follows is not published (most are: every connection opening is one).
    """

    def __init__(
        self,
        store: PresenceStore,
        *,
        hub: Hub,
        publish: Publish,
        rooms_of: RoomsOf,
        ttl: float,
        grace: float,
        alone: bool = False,
    ) -> None:
        self.store = store
        self._hub = hub
        self._publish = publish
        self._rooms_of = rooms_of
        self._ttl = ttl
        self.grace = grace
        self._alone = alone
        self._entries: dict[ConnId, Entry] = {}
        #: target user -> local subscriber connections.
        self._subscribers: dict[UserId, dict[ConnId, LocalConnection]] = {}
        self._following: dict[ConnId, set[UserId]] = {}
        self._versions: dict[UserId, int] = {}
        #: Users the store was told this instance follows (see PresenceStore.follow).
        self._followed: set[UserId] = set()
        #: Subscriptions under way (followed, not yet registered) per user.
        self._pending: dict[UserId, int] = {}
        self._follow_locks: KeyedLock[UserId] = KeyedLock()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def sweep_interval(self) -> float:
        return max(0.1, min(1.0, self.grace / 3 if self.grace else 1.0, self._ttl / 3))

    async def start(self) -> None:
        self._tasks = [
            supervise("presence-sweep", lambda: self._every(self.sweep_interval, self._sweep)),
        ]
        if self.store.expires:
            # A pass over every connection each ttl/3: 20% of an idle instance's CPU at
            # 10,000 connections, for a store whose entries cannot expire otherwise.
            self._tasks.append(supervise(
                "presence-refresh", lambda: self._every(self._ttl / 3, self._refresh)))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.store.close()

    # -- this instance's connections ----------------------------------------------

    async def connection_opened(self, conn: LocalConnection) -> None:
        await self._set(conn, self._entry(conn, "online", _NO_METADATA), quiet=True)

    @staticmethod
    def _entry(conn: LocalConnection, status: str, metadata: dict[str, Any]) -> Entry:
        # The connection's own room ids first: the entry shares those strings.
        rooms = tuple(sorted(conn.rooms | own_rooms(conn)))
        return Entry(status, metadata, now_ms(), rooms)

    async def connection_closed(self, conn: LocalConnection) -> None:
        for user in self._following.pop(conn.id, set()):
            if self._drop_subscriber(user, conn.id):
                await self._unfollow_if_unused(user)
        if self._entries.pop(conn.id, None) is None:
            return
        try:
            change = await self.store.remove(conn.user_id, conn.id, grace=self.grace)
        except BrokerError as exc:
            # The entry expires on its own after the TTL: offline comes late, not never.
            log_event(_log, "presence_store_failed", logging.WARNING, op="remove", error=str(exc))
            return
        if change is not None:
            await self._announce(change, conn)

    async def set_status(
        self, conn: LocalConnection, status: str, metadata: dict[str, Any]
    ) -> UserPresence:
        """A connection's ``presence`` message; returns what others now see of the user.

        Raises:
            ProtocolError: ``unavailable`` when the store cannot be reached.
        """
        change = await self._set(conn, self._entry(conn, status, metadata), quiet=False)
        assert change is not None
        return change.after

    async def _set(self, conn: LocalConnection, entry: Entry, *, quiet: bool) -> Change | None:
        try:
            change = await self.store.add(conn.user_id, conn.id, entry)
        except BrokerError as exc:
            if quiet:  # the refresher adds it once the store is back
                log_event(_log, "presence_store_failed", logging.WARNING, op="add", error=str(exc))
                return None
            raise ProtocolError(ErrorCode.UNAVAILABLE, "presence unavailable, retry later") from exc
        self._entries[conn.id] = entry
        if conn.id not in self._hub.connections:
            # Closed while the store answered: its removal may have run first.
            await self.connection_closed(conn)
            return change
        await self._announce(change, conn)
        return change

    # -- subscriptions --------------------------------------------------------------

    async def subscribe(self, conn: LocalConnection, user_id: UserId) -> UserPresence:
        """Follow a user's presence; returns it now.

        Raises:
            Forbidden: the connection shares no room with that user (same answer
                for unknown users: no probing).
            ProtocolError: too many subscriptions, or the store is unavailable.
        """
        if user_id != conn.user_id:
            try:
                rooms = await self._rooms_of(user_id)
            except BrokerError as exc:
                raise ProtocolError(ErrorCode.UNAVAILABLE, "presence unavailable") from exc
            if rooms.isdisjoint(conn.rooms):
                raise Forbidden("no shared room with that user")
        following = self._following.setdefault(conn.id, set())
        if user_id not in following and len(following) >= MAX_SUBSCRIPTIONS:
            raise ProtocolError(
                ErrorCode.INVALID_FIELD, f"at most {MAX_SUBSCRIPTIONS} presence subscriptions"
            )
        self._pending[user_id] = self._pending.get(user_id, 0) + 1
        try:
            # Followed before the read: a change after the read is then published.
            await self._follow(user_id)
            current = (await self.store.presence([user_id]))[user_id]
        except BrokerError as exc:
            raise ProtocolError(ErrorCode.UNAVAILABLE, "presence unavailable, retry later") from exc
        finally:
            if self._pending[user_id] == 1:
                del self._pending[user_id]
            else:
                self._pending[user_id] -= 1
        if conn.id in self._hub.connections:
            following.add(user_id)
            self._subscribers.setdefault(user_id, {})[conn.id] = conn
        else:
            await self._unfollow_if_unused(user_id)
        return current

    async def unsubscribe(self, conn: LocalConnection, user_id: UserId) -> bool:
        following = self._following.get(conn.id)
        if not following or user_id not in following:
            return False
        following.discard(user_id)
        if self._drop_subscriber(user_id, conn.id):
            await self._unfollow_if_unused(user_id)
        return True

    def _drop_subscriber(self, user_id: UserId, conn_id: ConnId) -> bool:
        """True when that was the user's last subscriber here."""
        subs = self._subscribers.get(user_id)
        if subs is not None:
            subs.pop(conn_id, None)
            if not subs:
                del self._subscribers[user_id]
                self._versions.pop(user_id, None)
                return True
        return False

    async def _follow(self, user_id: UserId) -> None:
        async with self._follow_locks.hold(user_id):
            if user_id not in self._followed:
                await self.store.follow([user_id], True)
                self._followed.add(user_id)

    async def _unfollow_if_unused(self, user_id: UserId) -> None:
        async with self._follow_locks.hold(user_id):
            if (user_id not in self._followed or user_id in self._subscribers
                    or user_id in self._pending):
                return
            self._followed.discard(user_id)
            try:
                await self.store.follow([user_id], False)
            except BrokerError as exc:  # the store's key expires: extra publishes meanwhile
                log_event(_log, "presence_store_failed", logging.WARNING, op="unfollow",
                          error=str(exc))

    # -- events -----------------------------------------------------------------------

    async def _announce(self, change: Change, conn: LocalConnection | None = None) -> None:
        """Publish a visible change to whoever may hear it: the rooms of the user's
        connections, and those ``conn`` (the connection that changed it) is entitled to."""
        if not change.visible:
            return
        user = change.after.user_id
        if (self._alone or not change.followed) and user not in self._subscribers:
            return
        heard_by = {RoomId(r) for r in change.rooms} | (own_rooms(conn) if conn else set())
        command = PresenceChanged(
            user, change.after.wire(), change.version, tuple(sorted(heard_by))
        )
        try:
            await self._publish(command)
        except BrokerError as exc:
            log_event(_log, "presence_publish_failed", logging.WARNING, error=str(exc))

    def apply(self, command: PresenceChanged) -> int:
        """Deliver a change to the local subscribers allowed to see it; returns how many."""
        subscribers = self._subscribers.get(command.user_id)
        if not subscribers:
            return 0
        last = self._versions.get(command.user_id, 0)
        if command.version <= last:
            return 0  # an older change that arrived late
        if len(self._versions) >= _MAX_VERSIONS:
            self._versions.clear()
        self._versions[command.user_id] = command.version
        frame = messages.encode(messages.envelope("presence", command.data))
        rooms = set(command.rooms)
        sent = 0
        for conn in subscribers.values():
            if conn.user_id == command.user_id or not rooms.isdisjoint(conn.rooms):
                sent += conn.send(frame)
        return sent

    # -- background ---------------------------------------------------------------------

    async def _every(self, interval: float, job: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await job()
            except BrokerError as exc:
                log_event(_log, "presence_store_failed", logging.WARNING, error=str(exc))
            except Exception:
                log_event(_log, "presence_task_failed", logging.ERROR, exc_info=True)

    async def _refresh(self) -> None:
        if self._followed:  # first: entries added again below must find their followers
            await self.store.follow(sorted(self._followed), True)
        conns = [(c.user_id, c.id) for c in self._hub.connections.values() if c.id in self._entries]
        for _user, conn_id in await self.store.refresh(conns):
            # Lost by the store (Redis restarted empty): add it again.
            conn = self._hub.connections.get(conn_id)
            entry = self._entries.get(conn_id)
            if conn is not None and entry is not None:
                await self._set(conn, entry, quiet=True)
        for conn in list(self._hub.connections.values()):
            if conn.id not in self._entries:  # its first add failed
                await self._set(conn, self._entry(conn, "online", {}), quiet=True)

    async def _sweep(self) -> None:
        for change in await self.store.sweep():
            await self._announce(change)
