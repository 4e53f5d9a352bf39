"""Whether a client's position can be recovered from what a stream holds: pure.

Never a partial replay: either every publication after the position, in order, or
nothing and ``recovered: false``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from roomcast.history.base import Position, Publication, Slice, is_complete


@dataclass(frozen=True, slots=True)
class JoinState:
    """What ``room_joined`` says about a room's stream, and what follows it."""

    #: The stream's top given to the connection (None: no history, or unreadable).
    top: Position | None
    #: None: no position was sent; else whether the replay is complete.
    recovered: bool | None = None
    replay: list[Publication] = field(default_factory=list)

    def fields(self) -> dict[str, Any]:
        """The ``room_joined`` data fields."""
        out: dict[str, Any] = {}
        if self.top is not None:
            out.update(self.top.wire())
        if self.recovered is not None:
            out["recovered"] = self.recovered
            out["replayed"] = len(self.replay)
        return out

    @property
    def after(self) -> int | None:
        """Buffered live publications at or below this offset were replayed or predate
        the join."""
        return None if self.top is None else self.top.offset


def decide(since: Position, found: Slice, recovery_max: int) -> JoinState:
    """The answer to a position, given the stream read after ``since.offset``
    (at most ``recovery_max + 1`` publications, ascending)."""
    top = found.top
    missed = top.offset - since.offset
    if top.epoch != since.epoch or missed < 0 or missed > recovery_max:
        return JoinState(top, recovered=False)
    if not is_complete(found.publications, since.offset, top.offset):
        return JoinState(top, recovered=False)  # expired or trimmed: never a partial replay
    return JoinState(top, recovered=True, replay=list(found.publications))


def parse_position(value: object) -> Position | None:
    """``{"epoch": str, "offset": int >= 0}`` from the wire, or None."""
    if not isinstance(value, dict):
        return None
    epoch, offset = value.get("epoch"), value.get("offset")
    if not isinstance(epoch, str) or not 0 < len(epoch) <= 64:
        return None
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset < 1 << 62:
        return None
    return Position(epoch, offset)
