"""The registry interface: who is connected where, across every instance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from roomcast.broker.base import Target

if TYPE_CHECKING:
    from roomcast.hub import LocalConnection


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """The connection object of the admin API."""

    id: str
    user_id: str
    character_id: int | None
    character_name: str
    rooms: list[str]
    created_at: str
    server_id: str

    def matches(
        self, *, user_id: str | None, character_id: int | None, room_id: str | None
    ) -> bool:
        """Whether it passes the admin API's listing filters (None: any)."""
        return (
            (user_id is None or self.user_id == user_id)
            and (character_id is None or self.character_id == character_id)
            and (room_id is None or room_id in self.rooms)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user_id": self.user_id,
            "character_id": self.character_id,
            "character_name": self.character_name,
            "rooms": sorted(self.rooms),
            "created_at": self.created_at,
            "server_id": self.server_id,
        }


@dataclass(frozen=True, slots=True)
class RoomInfo:
    """The room object of the admin API."""

    id: str
    type: str
    name: str
    member_count: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "name": self.name,
            "member_count": self.member_count,
        }


class Registry(Protocol):
    """Records local connections and answers cluster-wide questions.

    The ``connection_*`` hooks are synchronous and never fail: a registry that
    stores remotely schedules the write and retries; reads may lag by that much.
    """

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def connection_opened(self, conn: LocalConnection) -> None: ...

    def connection_closed(self, conn: LocalConnection) -> None: ...

    def rooms_changed(self, conn: LocalConnection) -> None:
        """Nothing for a connection not yet opened (it is registered in its first rooms)."""
        ...

    async def written(self, conn: LocalConnection) -> None:
        """Until the connection's last change is stored for every instance to read (or
        storing it failed, or took too long).

        Two joins of one room on two instances, each counting the room after its own
        write, cannot both count one member: the later write's count sees the other.
        """
        ...

    async def connections(
        self,
        *,
        user_id: str | None = None,
        character_id: int | None = None,
        room_id: str | None = None,
    ) -> list[ConnectionInfo]: ...

    async def connection(self, conn_id: str) -> ConnectionInfo | None: ...

    async def rooms(
        self, *, type: str | None = None, member_id: str | None = None
    ) -> list[RoomInfo]: ...

    async def room(self, room_id: str) -> RoomInfo | None: ...

    async def count(self, target: Target) -> int:
        """How many connections a target reaches, cluster-wide."""
        ...

    async def totals(self) -> tuple[int, int]:
        """(connections, rooms), cluster-wide."""
        ...
