"""The broker interface: where a publication goes, and who receives it back.

Contract of every implementation:

- ``publish`` hands the payload to the local handler synchronously *and* to the
  other instances; an instance never delivers its own publication twice
  (the Redis echo carrying our ``server_id`` is dropped).
- Delivery to other instances is at-most-once and ordered per publisher: a
  publication is never sent twice (when the backend did not confirm it,
  :class:`~roomcast.exceptions.DeliveryUnknown` says it may have arrived).
- ``publish`` raises :class:`~roomcast.exceptions.BrokerUnavailable` at once
  when the backend is unreachable, after local delivery has happened; it never
  buffers without bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from roomcast.membership.base import Group
from roomcast.types import ConnId, GroupId, RoomId, UserId


@dataclass(frozen=True, slots=True)
class ToConnection:
    """One connection, wherever it lives."""

    conn_id: ConnId


@dataclass(frozen=True, slots=True)
class ToUser:
    """Every connection of a user."""

    user_id: UserId


@dataclass(frozen=True, slots=True)
class ToRoom:
    """Every member of a room, optionally but one (the connection that caused it)."""

    room: RoomId
    exclude: ConnId | None = None


@dataclass(frozen=True, slots=True)
class ToAll:
    """Every connection of the cluster."""


Target = ToConnection | ToUser | ToRoom | ToAll


@dataclass(frozen=True, slots=True)
class MembershipChanged:
    """A user joined or left a group; every instance moves its live connections."""

    user_id: UserId
    group_id: GroupId
    group_name: str
    joined: bool


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Close every connection of a user, or one connection, cluster-wide."""

    user_id: UserId | None = None
    conn_id: ConnId | None = None
    code: int = 3500
    reason: str = "disconnected by administrator"
    #: Refuse the closed connections' tokens at the handshake until then (Unix seconds;
    #: a sticky kick): written by the instance that holds each connection, before it
    #: closes it.
    ban_tokens_until: float | None = None


@dataclass(frozen=True, slots=True)
class PresenceChanged:
    """A user's presence changed; every instance tells its subscribers of that user."""

    user_id: UserId
    #: ``data`` of the ``presence`` message (``userId``, ``status``, ``metadata``, ...).
    data: dict[str, Any]
    #: Increases with every change of any user: receivers drop a reordered older one.
    version: int
    #: The user's rooms: only subscribers sharing one of them are told.
    rooms: tuple[RoomId, ...] = ()


@dataclass(frozen=True, slots=True)
class TokenRefreshed:
    """A user's fresh token (verified by the sender) for some of their connections.

    Carries the claims a connection takes over, never the token itself.
    """

    user_id: UserId
    conn_ids: tuple[ConnId, ...]
    expires_at: float
    issued_at: float | None
    token_id: str
    scopes: tuple[str, ...]
    groups: tuple[Group, ...]


@dataclass(frozen=True, slots=True)
class RoomsChanged:
    """Members joined or left these rooms on ``server_id`` during the last interval of
    coalesced room events: every instance sends its own members of them one update."""

    server_id: str
    rooms: tuple[RoomId, ...]


ControlCommand = MembershipChanged | Disconnect | PresenceChanged | TokenRefreshed | RoomsChanged


class BrokerHandler(Protocol):
    """What a broker calls back into: the node of this instance."""

    def handle_publication(self, target: Target, payload: bytes) -> int:
        """Deliver an encoded envelope to the local recipients; return how many."""

    async def handle_control(self, command: ControlCommand) -> None:
        """Apply a control command to the local connections."""


class Broker(Protocol):
    """Pub/sub between instances."""

    #: True when no other instance can be reached through it (what nobody here
    #: listens to need not be published at all).
    alone: bool

    @property
    def healthy(self) -> bool:
        """Whether other instances can currently be reached."""

    @property
    def health_reason(self) -> str | None:
        """Why the broker is unhealthy, if it is."""

    async def start(self, handler: BrokerHandler) -> None:
        """Begin receiving from other instances."""

    async def publish(self, target: Target, payload: bytes) -> int:
        """Deliver locally, then to every other instance; return local recipients.

        Raises:
            BrokerUnavailable: the other instances could not be reached
                (local recipients have already received the payload).
        """

    async def publish_control(self, command: ControlCommand) -> None:
        """Apply a control command locally, then on every other instance."""

    async def subscribe_room(self, room: str) -> None:
        """Start receiving a room that got its first local member (per-room channels only)."""

    async def unsubscribe_room(self, room: str) -> None:
        """Stop receiving a room that has no local member left (per-room channels only)."""

    async def close(self) -> None:
        """Stop receiving and release the backend."""
