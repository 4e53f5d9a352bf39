"""User presence: what one connection says, what a user shows, and the store contract.

A user's presence is built from the entries of their live connections, on any
instance: the best status wins (``online`` > ``away`` > ``offline``, an explicit
``offline`` being "invisible"), with the metadata of that status's latest entry.
No entry at all is ``offline`` with ``lastSeen``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import orjson

from roomcast.types import ConnId, UserId

#: The React client's presence hook's statuses, best first (protocol.PRESENCE_STATUSES).
_RANK: Final = {"online": 3, "away": 2, "offline": 1}
#: Encoded size limit of a connection's presence metadata.
MAX_METADATA_BYTES: Final = 2048
#: How long a user's ``lastSeen`` is kept after their last connection went.
SEEN_TTL_MS: Final = 7 * 24 * 3600 * 1000


def now_ms() -> int:
    return int(time.time() * 1000)


def rfc3339(ms: int) -> str:
    """Unix milliseconds as RFC 3339 UTC with milliseconds (the gateway's timestamps)."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Entry:
    """The presence one connection announces."""

    status: str = "online"
    metadata: dict[str, Any] = field(default_factory=dict)
    #: Unix milliseconds of the announcement.
    updated: int = 0
    #: The connection's rooms then: who may hear of this entry's changes, even later.
    rooms: tuple[str, ...] = ()

    def encode(self) -> bytes:
        return orjson.dumps(
            {"s": self.status, "m": self.metadata, "t": self.updated, "r": self.rooms}
        )

    @classmethod
    def decode(cls, raw: bytes | str) -> Entry | None:
        """The entry, or None for bytes that are not one (never trust the store blindly)."""
        try:
            d = orjson.loads(raw)
            status, metadata, updated = d["s"], d.get("m") or {}, int(d.get("t", 0))
            rooms = tuple(str(r) for r in d.get("r") or ())
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None
        if status not in _RANK or not isinstance(metadata, dict):
            return None
        return cls(status, metadata, updated, rooms)


@dataclass(frozen=True, slots=True)
class UserPresence:
    """What everyone sees of a user."""

    user_id: UserId
    status: str
    metadata: dict[str, Any]
    #: Unix ms of the entry shown, or when the user was last seen (offline).
    updated: int
    #: Live connections counted (invisible ones included).
    connections: int
    #: The rooms of those connections.
    rooms: frozenset[str] = frozenset()

    def same_as(self, other: UserPresence) -> bool:
        """Whether subscribers would see no difference."""
        return self.status == other.status and self.metadata == other.metadata

    def wire(self) -> dict[str, Any]:
        """``data`` of a ``presence`` message, as the React hook reads it (``userId``)."""
        data: dict[str, Any] = {
            "userId": self.user_id,
            "user_id": self.user_id,
            "status": self.status,
            "metadata": self.metadata,
            "timestamp": rfc3339(self.updated) if self.updated else None,
        }
        if self.status == "offline" and self.connections == 0 and self.updated:
            data["lastSeen"] = data["timestamp"]
        return data


def aggregate(user_id: UserId, entries: list[Entry], last_seen: int = 0) -> UserPresence:
    """A user's presence from their live connections' entries."""
    if not entries:
        return UserPresence(user_id, "offline", {}, last_seen, 0)
    best = max(entries, key=lambda e: (_RANK[e.status], e.updated))
    rooms = frozenset(r for e in entries for r in e.rooms)
    return UserPresence(user_id, best.status, best.metadata, best.updated, len(entries), rooms)


@dataclass(frozen=True, slots=True)
class Change:
    """A user's presence before and after one store operation."""

    before: UserPresence
    after: UserPresence
    #: Increases with every change, cluster-wide: receivers drop reordered events.
    version: int
    #: False: the store knows of no instance following the user (nobody to tell).
    followed: bool = True

    @property
    def visible(self) -> bool:
        return not self.before.same_as(self.after)

    @property
    def rooms(self) -> frozenset[str]:
        """Rooms of the user's connections before and after: who may hear of it."""
        return self.before.rooms | self.after.rooms


@dataclass(frozen=True, slots=True)
class PresenceStats:
    users: int
    connections: int


class PresenceStore(Protocol):
    """Where the presence entries of every instance's connections live.

    Contract:

    - Entries expire: ``add`` and ``refresh`` keep one alive for ``ttl`` seconds, so
      the connections of a crashed instance vanish after ``ttl`` without anyone
      removing them; ``sweep`` (run by every instance) removes the expired ones and
      reports the users that changed, exactly once across instances.
    - ``remove`` with a grace period keeps the entry for ``grace`` seconds and
      reports nothing; ``sweep`` reports it then, unless the user came back.
    - Every operation that changes a user's entries returns a :class:`Change` with a
      cluster-wide increasing version; reads never return expired entries.
    - Failures of a remote store raise :class:`~roomcast.exceptions.BrokerUnavailable`.

    A store that lives and dies with its one instance (``expires`` False) keeps live
    entries until they are removed: nothing needs refreshing.
    """

    #: Whether live entries expire unless refreshed (a store shared by instances).
    expires: bool

    async def close(self) -> None: ...

    async def add(self, user_id: UserId, conn_id: ConnId, entry: Entry) -> Change:
        """Set a connection's entry (new or updated) and keep it alive for ``ttl``."""
        ...

    async def remove(self, user_id: UserId, conn_id: ConnId, *, grace: float) -> Change | None:
        """A closed connection: gone now (``grace`` 0) or after ``grace`` seconds (None)."""
        ...

    async def presence(self, user_ids: list[UserId]) -> dict[UserId, UserPresence]:
        """The current presence of users (offline ones included)."""
        ...

    async def presence_stats(self) -> PresenceStats:
        """Users online and live connections, cluster-wide."""
        ...

    async def refresh(self, conns: list[tuple[UserId, ConnId]]) -> list[tuple[UserId, ConnId]]:
        """Keep live connections' entries alive; returns those the store no longer had."""
        ...

    async def sweep(self) -> list[Change]:
        """Remove expired entries; the changes of the users concerned."""
        ...

    async def follow(self, user_ids: list[UserId], following: bool) -> None:
        """This instance starts (or stops) following these users: their changes show
        ``followed``. Called again now and then, to outlive a store that lost it."""
        ...
