"""The history engine interface, and what every engine shares.

A room with history has a bounded stream (``size`` publications, ``ttl`` seconds after
the last one) and metadata that outlives it (``meta_ttl``): an **epoch**, a random
string made when the stream is created, and the **top offset**, +1 per publication.
A position ``{epoch, offset}`` is only meaningful while the epoch is unchanged.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Protocol

from roomcast.types import RoomId


@dataclass(frozen=True, slots=True)
class Position:
    """Where a room's stream stands: its epoch and an offset (0 for an empty stream)."""

    epoch: str
    offset: int

    def wire(self) -> dict[str, str | int]:
        return {"epoch": self.epoch, "offset": self.offset}


@dataclass(frozen=True, slots=True)
class Retention:
    """How much of a room's stream is kept: ``size`` publications, ``ttl`` seconds
    after the last one; its epoch and top offset are kept ``meta_ttl`` seconds."""

    size: int
    ttl: float
    meta_ttl: float


@dataclass(frozen=True, slots=True)
class Publication:
    """One stored envelope (already carrying its ``offset`` and ``epoch``)."""

    offset: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Appended:
    """The result of an append: the stored envelope and its position."""

    position: Position
    payload: bytes
    #: False when the message id had been appended before (nothing new was stored).
    new: bool = True


@dataclass(frozen=True, slots=True)
class Slice:
    """Part of a stream: the stream's top, and publications in the order asked for."""

    top: Position
    publications: list[Publication]


@dataclass(frozen=True, slots=True)
class Route:
    """Where a Redis engine publishes an appended envelope, in the same round trip:
    ``head + envelope + tail`` on ``channel``."""

    channel: str
    head: bytes
    tail: bytes


class HistoryEngine(Protocol):
    """Stores publications per room. Every method may raise
    :class:`~roomcast.exceptions.BrokerError` when the backend cannot be reached."""

    async def append(
        self, room: RoomId, envelope: bytes, retention: Retention, *,
        message_id: str | None = None, route: Route | None = None,
    ) -> Appended:
        """Give ``envelope`` (a JSON object) the room's next offset and store it.

        An id appended before (still retained) is not stored again: its stored
        envelope comes back with ``new=False`` and is not published again.
        """

    async def read(
        self, room: RoomId, retention: Retention, *, since: int = 0, limit: int,
        reverse: bool = False,
    ) -> Slice:
        """Publications with an offset above ``since``: the oldest ``limit`` of them in
        ascending order, or with ``reverse`` the newest ``limit``, newest first."""

    async def top(self, room: RoomId, retention: Retention) -> Position:
        """The room's epoch and top offset (a new epoch, kept ``meta_ttl``, if it had none)."""

    async def close(self) -> None:
        """Release the backend."""


def new_epoch() -> str:
    """A fresh epoch: random, short, JSON- and Lua-safe."""
    return secrets.token_hex(6)


def stamp(envelope: bytes, offset: int, epoch: str) -> bytes:
    """``envelope`` with top-level ``offset`` and ``epoch`` appended (no re-encoding).

    ``envelope`` is a compact JSON object as orjson writes it; the Redis script
    does the same splice, so both engines store identical bytes.
    """
    if not envelope.endswith(b"}"):
        raise ValueError("an envelope must be a JSON object")
    return envelope[:-1] + b',"offset":%d,"epoch":"%s"}' % (offset, epoch.encode())


def is_complete(publications: list[Publication], since: int, top: int) -> bool:
    """Whether ascending ``publications`` are exactly offsets ``since+1 .. top``."""
    if len(publications) != top - since:
        return False
    return all(p.offset == since + i for i, p in enumerate(publications, 1))


_STAMP = re.compile(rb',"offset":(\d+),"epoch":"([^"\\]+)"\}\Z')


def position_of(payload: bytes) -> Position | None:
    """The position :func:`stamp` gave an envelope, or None for an unstamped one.

    Reads the tail only: receivers call it once per publication, not per recipient.
    """
    match = _STAMP.search(payload, max(0, len(payload) - 80))
    if match is None:
        return None
    return Position(match[2].decode(), int(match[1]))
