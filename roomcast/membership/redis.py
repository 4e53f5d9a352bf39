"""Group memberships in Redis, changed atomically by Lua scripts.

Keys (``prefix`` defaults to ``roomcast:``):

- ``{prefix}user_groups:{user_id}``: hash group_id -> group name, read in one
  round trip when a user connects;
- ``{prefix}group_members:{group_id}``: set of user ids;
- ``{prefix}group_names``: hash group_id -> name, the one name of each group.

The scripts touch keys they derive from the prefix: on a Redis Cluster the prefix starts
with a hash tag, so every key is in one slot.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from roomcast.batching import Batcher
from roomcast.broker.pool import lean_pool
from roomcast.broker.slots import CONTROL_TAG, pinned_pool
from roomcast.exceptions import StoreError
from roomcast.logs import log_event
from roomcast.membership.base import Group
from roomcast.types import GroupId, UserId

_T = TypeVar("_T")
_log = logging.getLogger("roomcast.membership.redis")

# KEYS: user_groups, group_members, group_names. ARGV: user, group, name, user_groups prefix.
# Returns 1 if the membership is new. A group has one name, so a rename is
# written into every member's hash.
_ADD = """
local added = redis.call('SADD', KEYS[2], ARGV[1])
if redis.call('HGET', KEYS[3], ARGV[2]) ~= ARGV[3] then
  redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
  for _, member in ipairs(redis.call('SMEMBERS', KEYS[2])) do
    redis.call('HSET', ARGV[4] .. member, ARGV[2], ARGV[3])
  end
else
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
end
return added
"""

# KEYS: user_groups, group_members, group_names. ARGV: user, group.
# Returns the removed group's name, or nil.
_REMOVE = """
local name = redis.call('HGET', KEYS[1], ARGV[2])
if not name then return false end
redis.call('HDEL', KEYS[1], ARGV[2])
redis.call('SREM', KEYS[2], ARGV[1])
if redis.call('SCARD', KEYS[2]) == 0 then redis.call('HDEL', KEYS[3], ARGV[2]) end
return name
"""

# Fail fast when Redis is down (the caller decides what to do), but retry once so
# a connection left stale by a Redis restart is replaced transparently.
_SOCKET_TIMEOUT = 5.0
_CONNECT_TIMEOUT = 2.0
_MAX_CONNECTIONS = 32


class RedisMembershipStore:
    """A :class:`~roomcast.membership.base.MembershipStore` in Redis.

    Args:
        url: ``redis://`` or ``rediss://`` URL.
        prefix: prepended to every key.
    """

    def __init__(self, url: str, prefix: str = "roomcast:", *, cluster: bool = False) -> None:
        self.url = url
        # On a Redis Cluster every key carries one hash tag: the scripts write other
        # members' keys, which must share the slot.
        self.prefix = CONTROL_TAG + prefix if cluster else prefix
        self._cluster = cluster
        self._redis: aioredis.Redis | None = None
        self._add: Any = None
        self._remove: Any = None
        self._groups_batch: Batcher[UserId, list[Group]] = Batcher(self._groups_of_many)

    def _keys(self, user_id: str, group_id: str) -> list[str]:
        p = self.prefix
        return [f"{p}user_groups:{user_id}", f"{p}group_members:{group_id}", f"{p}group_names"]

    async def open(self) -> None:
        """Set up the connection pool; Redis need not be up yet.

        An instance may start before Redis (a host booting, Redis restarting): the
        store then logs it, and each call fails with :class:`StoreError` until Redis
        answers, with no reconnection of its own to wait for.
        """
        if self._redis is not None:
            return
        try:
            # A blocking pool makes a burst of calls wait for a connection
            # instead of failing with "Too many connections".
            options: dict[str, Any] = {
                "max_connections": _MAX_CONNECTIONS, "timeout": _SOCKET_TIMEOUT,
                "decode_responses": True, "socket_timeout": _SOCKET_TIMEOUT,
                "socket_connect_timeout": _CONNECT_TIMEOUT,
                "retry": Retry(ExponentialBackoff(cap=0.1, base=0.01), retries=1)}
            pool = pinned_pool(self.url, **options) if self._cluster \
                else lean_pool(self.url, **options)
        except ValueError as exc:
            raise StoreError(f"invalid Redis URL: {exc}") from exc
        client = aioredis.Redis.from_pool(pool)
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            log_event(_log, "membership_store_unreachable", logging.WARNING,
                      error=str(exc)[:200])
        self._add = client.register_script(_ADD)
        self._remove = client.register_script(_REMOVE)
        self._redis = client

    async def close(self) -> None:
        """Close the connection pool; the store may be opened again."""
        client, self._redis = self._redis, None
        if client is not None:
            await client.aclose()

    async def _call(self, op: Callable[[aioredis.Redis], Awaitable[_T]]) -> _T:
        if self._redis is None:
            raise StoreError("Redis membership store is not open")
        try:
            return await op(self._redis)
        except (RedisError, OSError) as exc:
            raise StoreError(f"Redis membership store failed: {exc}") from exc

    async def groups_of(self, user_id: UserId) -> list[Group]:
        """The user's groups, ordered by group id (concurrent calls share one pipeline)."""
        return await self._groups_batch.get(user_id)

    async def _groups_of_many(self, users: list[UserId]) -> list[list[Group] | BaseException]:
        async def read(r: aioredis.Redis) -> list[Any]:
            pipe = r.pipeline(transaction=False)
            for user in users:
                pipe.hgetall(f"{self.prefix}user_groups:{user}")
            return await pipe.execute()

        out: list[list[Group] | BaseException] = []
        for names in await self._call(read):
            out.append([Group(GroupId(gid), names[gid]) for gid in sorted(names)])
        return out

    async def add(self, user_id: UserId, group_id: GroupId, name: str) -> bool:
        """Add a membership and set the group's name; True only if the membership is new."""
        keys = self._keys(user_id, group_id)
        args = [user_id, group_id, name, f"{self.prefix}user_groups:"]
        added: int = await self._call(lambda r: self._add(keys=keys, args=args))
        return added == 1

    async def remove(self, user_id: UserId, group_id: GroupId) -> Group | None:
        """Remove a membership; the removed group, or None if there was none."""
        keys = self._keys(user_id, group_id)
        name: str | None = await self._call(
            lambda r: self._remove(keys=keys, args=[user_id, group_id])
        )
        return None if name is None else Group(group_id, name)

    async def members(self, group_id: GroupId) -> list[UserId]:
        """The users of a group, ordered by user id."""
        key = f"{self.prefix}group_members:{group_id}"
        users: set[str] = await self._call(lambda r: r.smembers(key))  # type: ignore[arg-type,return-value]
        return [UserId(u) for u in sorted(users)]
