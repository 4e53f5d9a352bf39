"""Live connections follow membership changes made outside roomcast.

The Go application announces a membership change with a ``group_membership_change``
message to the user over Redis (``websocket:users``); its tokens carry no groups
and the memberships live in its own database. On such a message this instance
re-reads the user's memberships from the store (fresh, not from a cache) and
moves the user's live connections here into and out of group rooms, with the
usual ``room_joined`` / ``room_left`` and ``room_update``. The message itself is
delivered to the user as published, so the client hears of the change once.

Groups a connection got from its token's ``groups`` claim stay until it reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import orjson

from roomcast.broker.base import Target, ToUser
from roomcast.exceptions import StoreError
from roomcast.logs import log_event
from roomcast.membership.base import Group
from roomcast.membership.http import HttpMembershipProvider
from roomcast.types import UserId, group_room, group_room_name

if TYPE_CHECKING:
    from roomcast.node import Node

_log = logging.getLogger("roomcast.membership")
_MARKER = b'"group_membership_change"'


class MembershipSync:
    """Re-reads a user's memberships when told they changed, and moves live rooms."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._tasks: set[asyncio.Task[None]] = set()
        #: Users with a re-read in flight or queued (one at a time, one more after it).
        self._running: set[UserId] = set()
        self._again: set[UserId] = set()

    @classmethod
    def install(cls, node: Node) -> MembershipSync:
        """Watch the node's publications; let a store that retries report recoveries."""
        sync = cls(node)
        node.observers.append(sync.observe)
        store = node.store
        if isinstance(store, HttpMembershipProvider):  # groups once the app is back
            store.on_recovered = sync.apply
            store.wanted = lambda user_id: user_id in node.hub.users
        return sync

    def observe(self, target: Target, payload: bytes) -> None:
        """A publication delivered here: react to ``group_membership_change`` for a user."""
        if not isinstance(target, ToUser) or _MARKER not in payload:
            return
        if target.user_id not in self._node.hub.users:
            return  # nobody here to move; the next connect reads the store anyway
        with contextlib.suppress(orjson.JSONDecodeError):
            if orjson.loads(payload).get("type") == "group_membership_change":
                self.resync_soon(target.user_id)

    def resync_soon(self, user_id: UserId) -> None:
        if user_id in self._running:
            self._again.add(user_id)  # a change during a read: read once more after it
            return
        self._running.add(user_id)
        self._spawn(self._resync_loop(user_id))

    async def _resync_loop(self, user_id: UserId) -> None:
        try:
            while True:
                self._again.discard(user_id)
                await self.resync(user_id)
                if user_id not in self._again:
                    return
        finally:
            self._running.discard(user_id)

    async def resync(self, user_id: UserId) -> None:
        """Read the user's memberships from the store now and move the live connections."""
        store = self._node.store
        forget = getattr(store, "forget", None)
        if forget is not None:
            forget(user_id)
        try:
            groups = await store.groups_of(user_id)
        except StoreError as exc:
            log_event(_log, "membership_resync_failed", logging.WARNING, user=user_id,
                      error=str(exc))
            return
        await self.apply(user_id, groups)

    async def apply(self, user_id: UserId, groups: list[Group]) -> None:
        """Put every live connection of the user in exactly these groups' rooms."""
        node = self._node
        desired = {g.id: g for g in groups}
        moved = 0
        # The node's lock of this user: opens and other membership moves see our result whole.
        async with node.user_lock(user_id):
            for conn in list(node.hub.users.get(user_id, {}).values()):
                gone = [g for g in conn.groups if g not in desired and g not in conn.token_groups]
                for gid in gone:
                    conn.groups.pop(gid, None)
                    moved += await node.leave_room(conn, group_room(gid), "membership_removed")
                for gid, group in desired.items():
                    if gid in conn.groups and conn.groups[gid].name == group.name:
                        continue
                    conn.groups[gid] = group
                    name = group_room_name(group.name)
                    moved += await node.join_room(conn, group_room(gid), name)
        if moved:
            log_event(_log, "membership_resynced", user=user_id, groups=len(desired),
                      moves=moved)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
