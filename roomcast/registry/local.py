"""The registry of a single instance: answers straight from the hub."""

from __future__ import annotations

from roomcast.broker.base import Target, ToRoom
from roomcast.hub import Hub, LocalConnection
from roomcast.registry.base import ConnectionInfo, RoomInfo
from roomcast.types import ConnId, RoomId, room_type


def connection_info(conn: LocalConnection, server_id: str) -> ConnectionInfo:
    return ConnectionInfo(
        id=conn.id,
        user_id=conn.user_id,
        character_id=conn.character_id,
        character_name=conn.character_name,
        rooms=sorted(conn.rooms),
        created_at=conn.created_at,
        server_id=server_id,
    )


class LocalRegistry:
    """Everything is local: the hub is the registry."""

    def __init__(self, hub: Hub, server_id: str) -> None:
        self._hub = hub
        self._server_id = server_id

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def connection_opened(self, conn: LocalConnection) -> None:
        return None

    def connection_closed(self, conn: LocalConnection) -> None:
        return None

    def rooms_changed(self, conn: LocalConnection) -> None:
        return None

    async def written(self, conn: LocalConnection) -> None:
        return None

    async def connections(
        self,
        *,
        user_id: str | None = None,
        character_id: int | None = None,
        room_id: str | None = None,
    ) -> list[ConnectionInfo]:
        infos = (connection_info(c, self._server_id) for c in self._hub.connections.values())
        out = [
            i
            for i in infos
            if i.matches(user_id=user_id, character_id=character_id, room_id=room_id)
        ]
        return sorted(out, key=lambda c: (c.created_at, c.id))

    async def connection(self, conn_id: str) -> ConnectionInfo | None:
        conn = self._hub.connections.get(ConnId(conn_id))
        return connection_info(conn, self._server_id) if conn is not None else None

    async def rooms(
        self, *, type: str | None = None, member_id: str | None = None
    ) -> list[RoomInfo]:
        out = []
        for room in sorted(self._hub.rooms):
            info = self._room_info(room)
            if type is not None and info.type != type:
                continue
            if member_id is not None and not any(
                c.id == member_id or c.user_id == member_id for c in self._hub.rooms[room].values()
            ):
                continue
            out.append(info)
        return out

    async def room(self, room_id: str) -> RoomInfo | None:
        if RoomId(room_id) not in self._hub.rooms:
            return None
        return self._room_info(RoomId(room_id))

    def _room_info(self, room: RoomId) -> RoomInfo:
        kind = room_type(room)
        return RoomInfo(
            id=room,
            type=str(kind) if kind else "unknown",
            name=self._hub.room_names.get(room, room),
            member_count=self._hub.member_count(room),
        )

    async def count(self, target: Target) -> int:
        if isinstance(target, ToRoom) and target.exclude is None:
            return self._hub.member_count(target.room)
        return sum(1 for _ in self._hub.recipients(target))

    async def totals(self) -> tuple[int, int]:
        return len(self._hub.connections), len(self._hub.rooms)
