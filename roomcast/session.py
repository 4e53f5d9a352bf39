"""What a client message does: permission checks, then publish or reply.

docs/protocol.md: every client message that carries an ``id`` gets exactly one reply
with that ``id`` (the React client times out after 10 s otherwise).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from roomcast import metrics
from roomcast.auth.reasons import describe
from roomcast.broker.base import ToConnection, ToRoom
from roomcast.exceptions import (
    AuthError,
    BrokerError,
    DeliveryUnknown,
    Forbidden,
    ProtocolError,
    StoreError,
)
from roomcast.hub import LocalConnection
from roomcast.logs import Throttled
from roomcast.node import Node
from roomcast.protocol import messages
from roomcast.protocol.codes import ErrorCode
from roomcast.protocol.envelope import (
    ClientCommand,
    Presence,
    Publish,
    SystemCommand,
)
from roomcast.refresh import TokenRefresher
from roomcast.throttle import Throttle
from roomcast.types import (
    GroupId,
    RoomId,
    RoomType,
    UserId,
    group_room_name,
    personal_room,
    room_type,
)

_broker_failed = Throttled(logging.getLogger("roomcast.session"), "publish_degraded")

#: A ``members`` reply costs one message of the rate limit per this many members listed.
MEMBERS_PER_TOKEN = 20


class Session:
    """Handles the client messages of one connection."""

    __slots__ = ("conn", "limiter", "max_members", "node", "refresher")

    def __init__(self, node: Node, conn: LocalConnection, limiter: Throttle,
                 *, refresher: TokenRefresher | None = None, max_members: int = 500) -> None:
        self.node = node
        self.max_members = max_members
        self.conn = conn
        self.limiter = limiter
        self.refresher = refresher

    def reply(self, envelope: dict[str, Any]) -> None:
        self.conn.send(messages.encode(envelope))

    def reject(self, exc: ProtocolError) -> None:
        """Answer an invalid message with an ``error`` (the connection stays open)."""
        metrics.REJECTED.labels(str(exc.code)).inc()
        self.reply(messages.error(exc.code, exc.message, reply_to=exc.message_id,
                                  reason=exc.reason))

    async def handle(self, command: ClientCommand) -> None:
        """Carry out one parsed client message, replying exactly once if it has an id."""
        metrics.by_type(metrics.MESSAGES_RECEIVED, command.type).inc()
        try:
            if isinstance(command, Publish):
                await self._publish(command)
            elif isinstance(command, SystemCommand):
                await self._system(command)
            elif isinstance(command, Presence):
                await self._presence(command)
            else:
                self.reply(
                    messages.envelope(
                        "heartbeat", {"timestamp": messages.now_rfc3339()}, id=command.id
                    )
                )
        except ProtocolError as exc:
            exc.message_id = command.id
            self.reject(exc)
        except BrokerError as exc:
            # The broker's own text may carry the Redis address: the logs get it, users not.
            _broker_failed(time.monotonic(), type=command.type, error=str(exc))
            if not isinstance(command, Publish):
                text = "the other instances are unreachable; try again"
            elif isinstance(exc, DeliveryUnknown):
                text = ("delivered on this instance; the others may or may not have it "
                        "(not sent again)")
            else:
                text = "delivered on this instance only; the other instances are unreachable"
            error = ProtocolError(ErrorCode.UNAVAILABLE, text)
            error.message_id = command.id
            self.reject(error)

    async def _publish(self, command: Publish) -> None:
        conn = self.conn
        if command.room is not None:
            room = RoomId(command.room)
            if room not in conn.rooms:
                raise Forbidden(f"not a member of room {command.room[:64]!r}")
            target: ToRoom | ToConnection = ToRoom(room)
        else:
            assert command.to is not None
            target = ToConnection(await self._shared_connection(command.to))
        envelope = messages.envelope(
            command.type, command.data, room=command.room, from_=conn.id, to=command.to
        )
        await self.node.publish(target, envelope)
        if command.id is not None:
            self.reply(messages.ack(command.id, message_id=envelope["id"]))

    async def _shared_connection(self, conn_id: str) -> Any:
        """The target connection id, if it shares a room with the sender."""
        info = await self.node.registry.connection(conn_id)
        if info is None or not self.conn.rooms.intersection(info.rooms):
            # Same answer for unknown and unshared ids: no probing of other users.
            raise Forbidden("no shared room with that connection")
        return info.id

    async def _presence(self, command: Presence) -> None:
        """Set this connection's status; the reply shows what others now see of the user."""
        # The React hook names its own user; apps key it by user or character id.
        own: set[str | None] = {None, self.conn.user_id}
        if self.conn.character_id is not None:
            own.add(str(self.conn.character_id))
        if command.data.get("userId") not in own:
            raise Forbidden("presence can only be set for your own user")
        shown = await self.node.presence.set_status(self.conn, command.status, command.metadata)
        self.reply(messages.envelope("presence", shown.wire(), id=command.id))

    async def _presence_subscription(self, command: SystemCommand) -> None:
        """The React client's presence hook's subscribe/unsubscribe, answered by id."""
        assert command.user_id is not None
        user = UserId(command.user_id)
        tracker = self.node.presence
        if command.action == "unsubscribe_presence":
            removed = await tracker.unsubscribe(self.conn, user)
            if command.id is not None:
                self.reply(messages.ack(command.id, action_requested=command.action,
                                        userId=user, subscribed=False, changed=removed))
            return
        current = await tracker.subscribe(self.conn, user)
        if command.id is not None:
            self.reply(messages.ack(command.id, action_requested=command.action, userId=user,
                                    subscribed=True, presence=current.wire()))
        # The React manager swallows the reply to its request: the state comes as an event.
        self.reply(messages.envelope("presence", current.wire()))

    async def _system(self, command: SystemCommand) -> None:
        if command.action == "ping":
            self.reply(messages.pong(command.id))
            return
        if command.action == "refresh":
            await self._refresh(command)
            return
        if command.user_id is not None:
            await self._presence_subscription(command)
            return
        if command.action == "recover":
            raise ProtocolError(
                ErrorCode.INVALID_FIELD,
                "recover must be the first message of a connection opened with ?recover=1",
            )
        if command.action == "history":
            await self._history(command)
            return
        assert command.room is not None
        room = RoomId(command.room)
        if command.action == "join":
            # Under the user's lock, so a membership removal cannot slip in between the
            # entitlement check and the join (nor its room_left before our room_joined).
            async with self.node.user_lock(self.conn.user_id):
                name = self._entitlement(room)
                await self.node.join_room(self.conn, room, name, since=command.since)
            extra: dict[str, Any] = {"room": room, "joined": True}
        elif command.action == "leave":
            async with self.node.user_lock(self.conn.user_id):
                await self.node.leave_room(self.conn, room, "left")
            extra = {"room": room, "joined": False}
        else:
            if room not in self.conn.rooms:
                raise Forbidden(f"not a member of room {command.room[:64]!r}")
            members = await self.node.registry.connections(room_id=room)
            # Its cost is the size of the answer: a big room's listing spends the budget
            # of many messages (the read loop then pauses this connection accordingly).
            self.limiter.charge(len(members) / MEMBERS_PER_TOKEN)
            listed = members[: self.max_members]
            extra = {
                "room": room,
                "members": [
                    {
                        "connection_id": m.id,
                        "user_id": m.user_id,
                        "character_name": m.character_name,
                    }
                    for m in listed
                ],
                # A roomcast addition: how many there are, and whether the list is cut.
                "member_count": len(members),
                "truncated": len(listed) < len(members),
            }
        if command.id is not None:
            self.reply(messages.ack(command.id, action_requested=command.action, **extra))

    async def _refresh(self, command: SystemCommand) -> None:
        """A new token for this connection; refused ones leave it as it was."""
        assert command.token is not None
        if self.refresher is None:
            raise ProtocolError(ErrorCode.UNAVAILABLE, "token refresh is not available here")
        try:
            claims = await self.refresher.refresh(self.conn, command.token)
        except AuthError as exc:
            refused = ProtocolError(ErrorCode.UNAUTHORIZED,
                                    f"refresh refused: {describe(exc.reason)}")
            refused.reason = exc.reason
            raise refused from None
        except StoreError:
            raise ProtocolError(ErrorCode.UNAVAILABLE,
                                "the revocation store is unavailable; try again") from None
        if command.id is not None:
            self.reply(messages.ack(
                command.id, action_requested="refresh", user_id=claims.user_id,
                expires_at=messages.rfc3339(claims.expires_at),
                expires_in=max(0, int(claims.expires_at - time.time())),
            ))

    async def _history(self, command: SystemCommand) -> None:
        """A page of a room's stored publications, for rooms this connection is in."""
        assert command.room is not None
        room = RoomId(command.room)
        if room not in self.conn.rooms:
            raise Forbidden(f"not a member of room {command.room[:64]!r}")
        since = command.since
        found = await self.node.history.read(
            room, since=since.offset if since else 0, limit=command.limit,
            reverse=command.reverse,
        )
        if found is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"room {command.room[:64]!r} keeps no history")
        # Offsets of another epoch mean nothing in this stream: the client sees the new epoch.
        stale = since is not None and since.epoch != found.top.epoch
        publications = [] if stale else [orjson.Fragment(p.payload) for p in found.publications]
        if command.id is not None:
            self.reply(messages.ack(command.id, action_requested="history", room=room,
                                    publications=publications, **found.top.wire()))

    def _entitlement(self, room: RoomId) -> str:
        """The display name of a room this user may join; Forbidden otherwise."""
        if room == personal_room(self.conn.user_id):
            return f"User: {self.conn.character_name}"
        if room_type(room) is RoomType.GROUP:
            group = self.conn.groups.get(GroupId(room.removeprefix("group:")))
            if group is not None:
                return group_room_name(group.name)
        raise Forbidden(f"not entitled to room {room[:64]!r}")
