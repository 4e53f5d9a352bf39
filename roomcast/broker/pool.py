"""A blocking Redis connection pool that lends an idle connection without ceremony.

redis-py 8's ``BlockingConnectionPool`` takes a condition, a timeout scope and a lock,
records observability counters and inspects its arguments for deprecated ones, each
time a connection is taken and given back. A connect storm takes and returns one
several times per handshake (a lookup batch, a script call, a publish). When an
idle connection is there and no task waits for one, :class:`LeanPool` lends it
directly, checked as redis-py checks it (connected, nothing left unread); otherwise,
and while a maintenance handover rewrites the pool, redis-py's own path runs, so
waiters are woken as before.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection

from roomcast.broker.packing import packed_in_c

#: What the direct path relies on (private to redis-py: checked, never assumed).
_KNOWN = ("_in_maintenance", "_available_connections", "_in_use_connections",
          "ensure_connection", "_condition")


class LeanPool(aioredis.BlockingConnectionPool):
    """``BlockingConnectionPool`` with a direct path for the uncontended case."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Tasks on redis-py's path: a release must then go that way too (it notifies).
        self._slow = 0
        #: The pool is the one this was written against (redis-py 8): else always its path.
        self.lean = all(hasattr(self, name) for name in _KNOWN)

    def _direct(self) -> bool:
        return self.lean and not self._slow and not self._in_maintenance

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        if self._available_connections and self._direct():
            connection: AbstractConnection = self._available_connections.pop()
            self._in_use_connections.add(connection)
            try:
                await self.ensure_connection(connection)
            except BaseException:
                await self.release(connection)
                raise
            return connection
        self._slow += 1
        try:
            connection = await super().get_connection()  # type: ignore[no-untyped-call]
        finally:
            self._slow -= 1
        return connection

    async def release(self, connection: AbstractConnection) -> None:
        if not self._direct():
            await super().release(connection)
            return
        self._in_use_connections.remove(connection)
        if connection.should_reconnect():  # type: ignore[no-untyped-call]
            await connection.disconnect()
        self._available_connections.append(connection)


def lean_pool(url: str, **options: Any) -> LeanPool:
    """A :class:`LeanPool` for ``url`` whose connections pack commands in C."""
    return packed_in_c(LeanPool.from_url(url, **options))
