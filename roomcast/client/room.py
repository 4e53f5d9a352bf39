"""One room as the client sees it: membership from the server, handlers, sending."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from roomcast.client.dispatch import Handler
from roomcast.client.message import Message
from roomcast.client.positions import Position, Recovery


class RoomHost(Protocol):
    """What a :class:`Room` needs from its client."""

    def on_room(self, room: str, handler: Handler[Message]) -> Callable[[], None]: ...

    def on_recovery(
        self, handler: Handler[Recovery], *, room: str | None = None
    ) -> Callable[[], None]: ...

    def position(self, room: str) -> Position | None: ...

    async def send(
        self,
        type: str,
        data: Mapping[str, Any] | None = None,
        *,
        room: str | None = None,
        to: str | None = None,
        timeout: float | None = None,
    ) -> Message: ...

    async def members(self, room: str, *, timeout: float | None = None) -> list[Any]: ...


class Room:
    """A room by name; the server decides membership (no joining by hand).

    The same object is returned for a name for the client's lifetime, so handlers
    registered on it survive reconnects. ``joined`` follows ``room_joined`` /
    ``room_left`` of the current connection and is ``False`` while disconnected.
    """

    def __init__(self, host: RoomHost, name: str) -> None:
        self._host = host
        #: The room id, e.g. ``group:42`` or ``user:<uuid>``.
        self.name = name
        #: ``personal`` or ``group``, from the last ``room_joined``.
        self.type: str | None = None
        #: Display name from the last ``room_joined`` (``Group: <name>``).
        self.display_name: str | None = None
        #: Member count from the last ``room_joined``.
        self.member_count: int | None = None
        #: The ``reason`` of the last ``room_left``.
        self.left_reason: str | None = None
        #: The last recovery outcome of this room (None: no reconnect happened yet).
        self.recovery: Recovery | None = None
        self._joined = asyncio.Event()

    @property
    def joined(self) -> bool:
        """Whether the current connection is a member of this room."""
        return self._joined.is_set()

    async def wait_joined(self) -> Room:
        """Wait until the server says this connection is in the room."""
        await self._joined.wait()
        return self

    @property
    def recovered(self) -> bool | None:
        """Whether nothing was missed here across the last reconnect (None: none yet)."""
        return None if self.recovery is None else self.recovery.recovered

    @property
    def position(self) -> Position | None:
        """The room's stream position at the last publication delivered."""
        return self._host.position(self.name)

    def on_recovery(self, handler: Handler[Recovery]) -> Callable[[], None]:
        """Call ``handler`` with each recovery outcome of this room; returns a remover."""
        return self._host.on_recovery(handler, room=self.name)

    def on_message(self, handler: Handler[Message]) -> Callable[[], None]:
        """Call ``handler`` for every message of this room; returns an unregister function."""
        return self._host.on_room(self.name, handler)

    async def send(
        self,
        data: Mapping[str, Any] | None = None,
        *,
        type: str = "message",
        timeout: float | None = None,
    ) -> Message:
        """Send ``data`` to the room's members (the sender included); returns the ack.

        Raises:
            ServerError: e.g. ``forbidden`` when not a member.
            AckTimeout: no ack in time.
        """
        return await self._host.send(type, data, room=self.name, timeout=timeout)

    async def members(self, *, timeout: float | None = None) -> list[Any]:
        """The room's members, as the server lists them."""
        return await self._host.members(self.name, timeout=timeout)

    def _on_joined(self, data: Mapping[str, Any]) -> None:
        kind, display, count = data.get("type"), data.get("name"), data.get("member_count")
        self.type = kind if isinstance(kind, str) else self.type
        self.display_name = display if isinstance(display, str) else self.display_name
        self.member_count = count if isinstance(count, int) else self.member_count
        self.left_reason = None
        self._joined.set()

    def _on_left(self, reason: str | None) -> None:
        self.left_reason = reason
        self._joined.clear()

    def __repr__(self) -> str:
        return f"<Room {self.name} joined={self.joined}>"


class RoomDirectory:
    """Every :class:`Room` by name, and which ones the current connection is in."""

    def __init__(self, host: RoomHost) -> None:
        self._host = host
        self._rooms: dict[str, Room] = {}
        self._joined: set[str] = set()

    def get(self, name: str) -> Room:
        """The room named ``name``, created on first use."""
        room = self._rooms.get(name)
        if room is None:
            room = self._rooms[name] = Room(self._host, name)
        return room

    @property
    def joined(self) -> frozenset[str]:
        """The names of the rooms the current connection is in."""
        return frozenset(self._joined)

    def track(self, message: Message) -> None:
        """Follow ``room_joined`` / ``room_left`` (other messages are ignored)."""
        name = message.target_room
        if name is None:
            return
        if message.type == "room_joined":
            self._joined.add(name)
            self.get(name)._on_joined(message.data)
        elif message.type == "room_left":
            self._joined.discard(name)
            reason = message.data.get("reason")
            self.get(name)._on_left(reason if isinstance(reason, str) else None)

    def disconnected(self) -> None:
        """The connection is gone, and with it every membership."""
        for name in self._joined:
            self._rooms[name]._on_left("disconnected")
        self._joined.clear()
