"""The engines under contract test, behind one harness each.

A harness makes the engine, lets time pass for its data (a fake clock for memory, a
real wait on the keys' TTL for Redis) and loses its state (a restart without
persistence, or FLUSHALL).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from roomcast.history.base import HistoryEngine
from roomcast.history.memory import MemoryHistory


class Harness(Protocol):
    engine: HistoryEngine

    async def expire_data(self, room: str) -> None:
        """Let the room's data TTL pass (its meta stays)."""

    async def expire_all(self, room: str) -> None:
        """Let the room's meta TTL pass too."""

    async def lose_everything(self) -> None:
        """The backend restarts empty (memory restart, FLUSHALL)."""


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class MemoryHarness:
    clock: FakeClock = field(default_factory=FakeClock)
    engine: HistoryEngine = field(init=False)
    #: The largest TTL the tests use; advancing past it expires anything.
    data_ttl: float = 60.0
    meta_ttl: float = 600.0

    def __post_init__(self) -> None:
        self.engine = MemoryHistory(clock=self.clock)

    async def expire_data(self, room: str) -> None:
        self.clock.now += self.data_ttl + 1

    async def expire_all(self, room: str) -> None:
        self.clock.now += self.meta_ttl + 1

    async def lose_everything(self) -> None:
        self.engine = MemoryHistory(clock=self.clock)
