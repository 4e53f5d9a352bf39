"""Per-room stream positions: recovery after a reconnect, and exactly-once delivery.

Publications of a room with history carry ``offset`` (+1 per publication) and
``epoch`` (changes when the server lost the stream). :class:`Positions` keeps the last
``{epoch, offset}`` delivered per room, builds the ``recover`` message sent first on a
reconnect, drops what it has already delivered, and turns the server's answers (and
what it sees live) into one :class:`Recovery` per room: either nothing was missed, or
the app must reload that room's state. It does no I/O; the client feeds it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from roomcast.client.message import Message

#: Query parameter that makes the server wait for the positions before joining rooms.
RECOVER_PARAM = "recover"
#: Epochs a room left behind that are remembered, to drop their late publications.
RETIRED_EPOCHS = 4


@dataclass(frozen=True, slots=True)
class Position:
    """Where a room's stream stood at the last publication delivered to the app."""

    epoch: str
    offset: int

    def to_wire(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "offset": self.offset}

    @classmethod
    def from_wire(cls, value: object) -> Position | None:
        """``{"epoch": str, "offset": int >= 0}``, or None for anything else."""
        if not isinstance(value, Mapping):
            return None
        return _position(value.get("epoch"), value.get("offset"))


class Reason(StrEnum):
    """Why a room did, or did not, recover."""

    #: The server replayed every missed publication (``recovered: true``).
    RECOVERED = "recovered"
    #: The server could not: the epoch changed, the data expired, or too much was missed.
    NOT_RECOVERED = "not_recovered"
    #: The room keeps no history: what was published meanwhile is gone.
    NO_HISTORY = "no_history"
    #: A position was sent but the server did not answer it (a server without recovery).
    UNSUPPORTED = "unsupported"
    #: The client had no position for a room it was in (nothing had told it one).
    NO_POSITION = "no_position"
    #: A live publication came with a new epoch: the server lost the room's stream.
    EPOCH_CHANGED = "epoch_changed"
    #: A live publication skipped offsets (never expected from a roomcast server).
    GAP = "gap"


@dataclass(frozen=True, slots=True)
class Recovery:
    """What the app is told about one room after a reconnect (or a stream loss seen live).

    ``recovered`` is True only when every publication missed in the room was delivered
    (replayed in order, before the live ones). When False, the app must reload the
    room's state from its source of truth: some publications are gone for good.
    """

    room: str
    recovered: bool
    reason: Reason
    #: How many missed publications the server replayed.
    replayed: int = 0
    #: The room's stream position the client continues from (None: no history).
    position: Position | None = None


@dataclass(slots=True)
class Stats:
    """Counters of what :class:`Positions` saw, for tests and metrics."""

    duplicates: int = 0
    stale: int = 0
    recovered: int = 0
    not_recovered: int = 0


@dataclass(slots=True)
class _Room:
    position: Position | None = None
    retired: list[str] = field(default_factory=list)


class Positions:
    """The client's positions per room, and the recovery decisions built on them.

    Lifecycle per connection: :meth:`recover_message` (first frame, if it returns one),
    then :meth:`joined` for each ``room_joined`` and :meth:`check` for every message,
    and :meth:`disconnected` when the connection is gone.
    """

    def __init__(self, initial: Mapping[str, Position] | None = None) -> None:
        self._rooms: dict[str, _Room] = {
            room: _Room(position) for room, position in (initial or {}).items()
        }
        # Rooms of the last connection: their next room_joined must say whether they
        # recovered. Positions given at construction count too (a restarted process).
        self._expected: set[str] = set(self._rooms)
        # Positions sent in the current connection's recover message.
        self._sent: dict[str, Position] = {}
        self.stats = Stats()

    # -- reading -------------------------------------------------------------------

    def get(self, room: str) -> Position | None:
        """The last position delivered in ``room``."""
        state = self._rooms.get(room)
        return state.position if state else None

    def snapshot(self) -> dict[str, Position]:
        """Every known position, e.g. to persist and pass back after a restart."""
        return {room: s.position for room, s in self._rooms.items() if s.position is not None}

    @property
    def wants_recovery(self) -> bool:
        """Whether the next connection has positions to hand to the server."""
        return any(s.position is not None for s in self._rooms.values())

    # -- a connection's lifecycle ----------------------------------------------------

    def recover_message(self, message_id: str) -> dict[str, Any] | None:
        """The ``recover`` message to send first on a new connection (None: nothing to send)."""
        self._sent = self.snapshot()
        if not self._sent:
            return None
        positions = {room: p.to_wire() for room, p in self._sent.items()}
        return {
            "type": "system",
            "id": message_id,
            "data": {"action": "recover", "positions": positions},
        }

    def joined(self, room: str, data: Mapping[str, Any]) -> Recovery | None:
        """Handle ``room_joined``; the room's recovery outcome if the app must hear one.

        A room the previous connection was in (or whose position was sent) gets an
        outcome; a room joined for the first time does not.
        """
        state = self._rooms.setdefault(room, _Room())
        expected = room in self._expected
        self._expected.discard(room)
        sent = self._sent.pop(room, None)
        live = _position(data.get("epoch"), data.get("offset"))
        if live is None:
            # No history in this room, or the server could not read the stream just now
            # (it then says recovered: false; live publications bring a position again).
            state.position = None
            if not (expected or sent):
                return None
            failed = data.get("recovered") is False
            return self._outcome(room, Reason.NOT_RECOVERED if failed else Reason.NO_HISTORY)
        answer = data.get("recovered")
        if sent is not None and answer is True and sent.epoch == live.epoch:
            # The replay (sent.offset+1 .. live.offset) follows: keep the sent position
            # so that check() delivers it rather than dropping it as already seen
            # (never move back past what was delivered meanwhile, though).
            if state.position is None or state.position.epoch != sent.epoch \
                    or state.position.offset < sent.offset:
                state.position = sent
            replayed = data.get("replayed")
            count = replayed if isinstance(replayed, int) and replayed >= 0 else 0
            return self._outcome(room, Reason.RECOVERED, count, sent)
        self._move(state, live)
        if sent is not None:
            # An answer of True with another epoch than the one sent is not trusted.
            reason = Reason.UNSUPPORTED if answer is None else Reason.NOT_RECOVERED
        elif expected:
            reason = Reason.NO_POSITION
        else:
            return None
        return self._outcome(room, reason, 0, live)

    def check(self, message: Message) -> tuple[bool, Recovery | None]:
        """Whether to deliver ``message``, and a recovery outcome it reveals.

        Messages without ``offset``/``epoch`` are always delivered. A publication at or
        below the room's position (same epoch) was delivered before: dropped. One of a
        new epoch means the server lost the stream: delivered, room not recovered.
        """
        room = message.room
        position = _position(message.raw.get("epoch"), message.raw.get("offset"))
        if room is None or position is None:
            return True, None
        state = self._rooms.setdefault(room, _Room())
        last = state.position
        if last is None:
            state.position = position
            return True, None
        if position.epoch == last.epoch:
            if position.offset <= last.offset:
                self.stats.duplicates += 1
                return False, None
            state.position = position
            if position.offset > last.offset + 1:
                return True, self._outcome(room, Reason.GAP, 0, position)
            return True, None
        if position.epoch in state.retired:
            # A late publication of a stream already replaced: the app was told to
            # reload this room when the new epoch appeared.
            self.stats.stale += 1
            return False, None
        self._move(state, position)
        return True, self._outcome(room, Reason.EPOCH_CHANGED, 0, position)

    def acked(self, reply: Message) -> None:
        """Handle the ack of the recover message: forget rooms the server ignored."""
        ignored = reply.data.get("ignored")
        if isinstance(ignored, list):
            for room in ignored:
                if isinstance(room, str):
                    self.left(room)

    def left(self, room: str) -> None:
        """The connection left ``room`` for good (not a disconnect): forget it."""
        self._rooms.pop(room, None)
        self._expected.discard(room)
        self._sent.pop(room, None)

    def disconnected(self, rooms: Iterable[str]) -> None:
        """The connection is gone; it was in ``rooms``, whose fate the next one tells."""
        self._expected.update(rooms)
        self._sent.clear()

    # -- helpers ---------------------------------------------------------------------

    def _move(self, state: _Room, position: Position) -> None:
        old = state.position
        if old is not None and old.epoch != position.epoch:
            state.retired = [*state.retired, old.epoch][-RETIRED_EPOCHS:]
        state.position = position

    def _outcome(
        self, room: str, reason: Reason, replayed: int = 0, position: Position | None = None
    ) -> Recovery:
        recovered = reason is Reason.RECOVERED
        if recovered:
            self.stats.recovered += 1
        else:
            self.stats.not_recovered += 1
        return Recovery(room, recovered, reason, replayed, position)


def recover_url(url: str) -> str:
    """``url`` with ``recover=1`` in its query (kept once)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k != RECOVER_PARAM]
    query.append((RECOVER_PARAM, "1"))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _position(epoch: object, offset: object) -> Position | None:
    if not isinstance(epoch, str) or not epoch:
        return None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        return None
    return Position(epoch, offset)
