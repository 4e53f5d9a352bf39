"""The engines under contract test, behind one harness each.

A harness makes the engine, lets time pass for its data (a fake clock for memory, a
real wait on the keys' TTL for Redis) and loses its state (a restart without
persistence, or FLUSHALL).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol

import redis.asyncio as aioredis

from roomcast.history.base import HistoryEngine
from roomcast.history.memory import MemoryHistory
from roomcast.history.redis import RedisHistory, keys
from tests.helpers.redis_server import RedisServer

#: A generous bound on waiting for Redis to expire a key (its TTL is far shorter).
EXPIRY_WAIT = 20.0


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


@dataclass
class RedisHarness:
    """Real TTLs: the tests' retention for Redis is short, and expiry is awaited by
    watching the keys disappear."""

    server: RedisServer
    engine: HistoryEngine = field(init=False)

    def __post_init__(self) -> None:
        self.engine = RedisHistory(self.server.url)
        self.raw = aioredis.Redis.from_url(self.server.url)

    async def _gone(self, key: str) -> None:
        """Until Redis expired ``key``: its keyspace notification is the event."""
        await self.raw.config_set("notify-keyspace-events", "Ex")
        pubsub = self.raw.pubsub()
        try:
            await pubsub.subscribe("__keyevent@0__:expired")
            if not await self.raw.exists(key):
                return
            async with asyncio.timeout(EXPIRY_WAIT):
                async for message in pubsub.listen():
                    if message["type"] == "message" and message["data"] == key.encode():
                        return
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def expire_data(self, room: str) -> None:
        await self._gone(keys(room)[1])

    async def expire_all(self, room: str) -> None:
        await self._gone(keys(room)[0])

    async def lose_everything(self) -> None:
        await self.raw.flushall()

    async def close(self) -> None:
        await self.engine.close()
        await self.raw.aclose()
