"""Gap-free handover from a room's stored publications to its live ones.

While a connection joins a room, its live publications of that room are buffered (it
is a member already, so nothing published meanwhile is missed, and none of them comes
before its ``room_joined``). Once the room was counted and, in a room with history, its
stream read, :meth:`Handover.finish` returns the frames to send, in order: the
replay, then the buffered publications newer than the stream position the connection
was given (older ones are in the replay or were before its join), and the connection
switches to direct delivery. All of that happens without an ``await`` in between.
"""

from __future__ import annotations

from roomcast.broker.base import Target, ToRoom, ToUser
from roomcast.history.base import Publication, position_of
from roomcast.types import ConnId, RoomId, personal_room


class Handover:
    """Per-connection, per-room buffers of live publications during a join."""

    def __init__(self) -> None:
        self._pending: dict[RoomId, dict[ConnId, list[bytes]]] = {}
        #: Connections that joined at an offset the instance's live delivery has not
        #: reached yet (publications lag on pub/sub): they must not get those twice.
        self._floors: dict[RoomId, dict[ConnId, int]] = {}

    @property
    def active(self) -> bool:
        return bool(self._pending or self._floors)

    def begin(self, conn: ConnId, room: RoomId) -> None:
        """Buffer ``room``'s live publications for ``conn`` from now on."""
        self._pending.setdefault(room, {})[conn] = []

    def offer(self, target: Target, payload: bytes) -> set[ConnId]:
        """Buffer a live publication for the joining connections it addresses;
        returns them (the caller skips them in its direct delivery)."""
        if isinstance(target, ToRoom):
            room, exclude = target.room, target.exclude
        elif isinstance(target, ToUser):
            room, exclude = personal_room(target.user_id), None
        else:
            return set()
        taken: set[ConnId] = set()
        floors = self._floors.get(room)
        if floors:
            position = position_of(payload)
            if position is not None:
                # Delivery is in offset order: past a floor, the floor is done with.
                for conn, floor in list(floors.items()):
                    if position.offset <= floor:
                        taken.add(conn)
                    else:
                        del floors[conn]
                if not floors:
                    del self._floors[room]
        joining = self._pending.get(room)
        if joining:
            for conn, buffer in joining.items():
                if conn != exclude:
                    buffer.append(payload)
                    taken.add(conn)
        return taken

    def forget(self, room: RoomId) -> None:
        """The room has no local member left."""
        self._floors.pop(room, None)

    def cancel(self, conn: ConnId, room: RoomId) -> list[bytes]:
        """Stop buffering; returns what was buffered."""
        joining = self._pending.get(room)
        if joining is None:
            return []
        buffered = joining.pop(conn, [])
        if not joining:
            del self._pending[room]
        return buffered

    def finish(
        self, conn: ConnId, room: RoomId, replay: list[Publication], after: int | None,
        *, delivered: int | None = None,
    ) -> list[bytes]:
        """Stop buffering; the payloads to send now: ``replay``, then the buffered ones
        above offset ``after`` (None: all of them, the room's stream was not read).

        ``delivered`` is how far this instance's live delivery of the room has come
        (None: it is never behind the stream). Publications up to ``after`` arriving
        later are not delivered to this connection again.
        """
        frames = [p.payload for p in replay]
        for payload in self.cancel(conn, room):
            position = position_of(payload)
            if after is None or position is None or position.offset > after:
                frames.append(payload)
        if after is not None and delivered is not None and delivered < after:
            self._floors.setdefault(room, {})[conn] = after
        return frames
