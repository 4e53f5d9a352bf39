"""Cluster-wide presence in Redis: one Lua script per operation, so instances agree.

Keys:

- ``roomcast:presence:user:{user_id}``: hash, connection id -> entry (JSON);
- ``roomcast:presence:expiry``: sorted set, ``"{conn_id} {user_id}"`` -> expiry (Unix ms),
  pushed forward by the holding instance every ``ttl / 3``; a crashed instance stops
  doing so and its entries expire;
- ``roomcast:presence:leaving``: members in their grace period (never refreshed);
- ``roomcast:presence:users``: users with at least one entry (for the stats);
- ``roomcast:presence:seen:{user_id}``: when the user's last entry went (7 days);
- ``roomcast:presence:seq``: the version counter of changes;
- ``roomcast:presence:followers:{user_id}``: set of the instances with a subscriber of
  that user. A change of a user no instance follows is not published (nobody could
  hear it): most changes are connections opening and closing, each of which would
  otherwise reach every instance. A crashed instance's id stays until the key expires
  (its survivors refresh it): extra publishes, never missing ones.

The sweeper of every instance removes expired entries atomically (ZRANGEBYSCORE +
HDEL in one script), so each expiry is reported by exactly one instance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from roomcast.batching import pipelined, run_script
from roomcast.broker.pool import lean_pool
from roomcast.broker.slots import CONTROL_TAG, pinned_pool
from roomcast.exceptions import BrokerUnavailable
from roomcast.presence.base import (
    SEEN_TTL_MS,
    Change,
    Entry,
    PresenceStats,
    UserPresence,
    aggregate,
    now_ms,
)
from roomcast.types import ConnId, UserId

PREFIX = "roomcast:presence:"
USER_PREFIX = PREFIX + "user:"
SEEN_PREFIX = PREFIX + "seen:"
EXPIRY = PREFIX + "expiry"
LEAVING = PREFIX + "leaving"
USERS = PREFIX + "users"
SEQ = PREFIX + "seq"
FOLLOWERS_PREFIX = PREFIX + "followers:"
#: Expired entries removed per script call (a sweep calls it until none are left).
SWEEP_BATCH = 500
_KEYS = [EXPIRY, LEAVING, USERS, SEQ]

# KEYS: expiry zset, leaving set, users set, seq. Per-user keys are derived from a
# prefix (on a Redis Cluster all carry one hash tag: one slot).
_PRELUDE = """
local Z, LEAVING, USERS, SEQ = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
-- FOLLOWERS_PREFIX, from the user prefix (ARGV[1], which ends in 'user:').
local FOLLOWERS = string.sub(ARGV[1], 1, -6) .. 'followers:'
local function followed(uid) return redis.call('EXISTS', FOLLOWERS .. uid) end
-- Split a user's hash into live entries (flat conn, value list) and expired conn ids.
local function split(hash, uid, now)
  local flat = redis.call('HGETALL', hash)
  local live, dead = {}, {}
  for i = 1, #flat, 2 do
    local score = redis.call('ZSCORE', Z, flat[i] .. ' ' .. uid)
    if score and tonumber(score) > now then
      table.insert(live, flat[i]); table.insert(live, flat[i + 1])
    else
      table.insert(dead, flat[i])
    end
  end
  return live, dead
end
-- Remove connections (and any other expired entry) of a user; report before/after.
local function drop(prefix, seen_prefix, uid, conns, now)
  local hash = prefix .. uid
  local live, dead = split(hash, uid, now)
  for _, conn in ipairs(conns) do table.insert(dead, conn) end
  local removed = {}
  for _, conn in ipairs(dead) do
    local m = conn .. ' ' .. uid
    local v = redis.call('HGET', hash, conn)
    if v then table.insert(removed, conn); table.insert(removed, v) end
    redis.call('HDEL', hash, conn)
    redis.call('ZREM', Z, m)
    redis.call('SREM', LEAVING, m)
  end
  local remaining, _ = split(hash, uid, now)
  local seen = ''
  if #remaining == 0 then
    redis.call('SREM', USERS, uid)
    seen = tostring(now)
    redis.call('SET', seen_prefix .. uid, seen, 'PX', ARGV[2])
  end
  return {uid, redis.call('INCR', SEQ), removed, remaining, seen, followed(uid)}
end
"""

# ARGV: user prefix, seen ttl, seen prefix, uid, conn, entry, expire_at, now, hash ttl
_ADD = _PRELUDE + """
local uid, conn = ARGV[4], ARGV[5]
local hash = ARGV[1] .. uid
local now = tonumber(ARGV[8])
local old, _ = split(hash, uid, now)
local seen = redis.call('GET', ARGV[3] .. uid) or ''
local m = conn .. ' ' .. uid
redis.call('HSET', hash, conn, ARGV[6])
redis.call('ZADD', Z, ARGV[7], m)
redis.call('SREM', LEAVING, m)
redis.call('SADD', USERS, uid)
redis.call('PEXPIRE', hash, ARGV[9])
return {redis.call('INCR', SEQ), old, seen, followed(uid)}
"""

# ARGV: user prefix, seen ttl, seen prefix, uid, conn, grace ms, now
_REMOVE = _PRELUDE + """
local uid, conn = ARGV[4], ARGV[5]
local m = conn .. ' ' .. uid
local now = tonumber(ARGV[7])
if not redis.call('ZSCORE', Z, m) then return false end
local grace = tonumber(ARGV[6])
if grace > 0 then
  redis.call('ZADD', Z, now + grace, m)
  redis.call('SADD', LEAVING, m)
  return false
end
return drop(ARGV[1], ARGV[3], uid, {conn}, now)
"""

# ARGV: user prefix, seen ttl, seen prefix, now, batch
_SWEEP = _PRELUDE + """
local now = tonumber(ARGV[4])
local expired = redis.call('ZRANGEBYSCORE', Z, '-inf', now, 'LIMIT', 0, tonumber(ARGV[5]))
local by_user, order = {}, {}
for _, m in ipairs(expired) do
  local sp = string.find(m, ' ', 1, true)
  if sp then
    local conn, uid = string.sub(m, 1, sp - 1), string.sub(m, sp + 1)
    if not by_user[uid] then by_user[uid] = {}; table.insert(order, uid) end
    table.insert(by_user[uid], conn)
  else
    redis.call('ZREM', Z, m)
  end
end
local out = {}
for _, uid in ipairs(order) do
  table.insert(out, drop(ARGV[1], ARGV[3], uid, by_user[uid], now))
end
return out
"""

# ARGV: user prefix, seen ttl, seen prefix, now, uid...
_READ = _PRELUDE + """
local now = tonumber(ARGV[4])
local out = {}
for i = 5, #ARGV do
  local live, _ = split(ARGV[1] .. ARGV[i], ARGV[i], now)
  table.insert(out, {live, redis.call('GET', ARGV[3] .. ARGV[i]) or ''})
end
return out
"""

# ARGV: user prefix, seen ttl, seen prefix, expire_at, hash ttl, (uid, conn)...
_REFRESH = _PRELUDE + """
local missing = {}
for i = 6, #ARGV, 2 do
  local uid, conn = ARGV[i], ARGV[i + 1]
  local m = conn .. ' ' .. uid
  local hash = ARGV[1] .. uid
  if redis.call('SISMEMBER', LEAVING, m) == 0 then
    if redis.call('ZSCORE', Z, m) and redis.call('HEXISTS', hash, conn) == 1 then
      redis.call('ZADD', Z, 'XX', ARGV[4], m)
      redis.call('PEXPIRE', hash, ARGV[5])
    else
      table.insert(missing, (i - 6) / 2)
    end
  end
end
return missing
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entries(flat: list[Any]) -> dict[str, Entry]:
    out = {}
    for i in range(0, len(flat) - 1, 2):
        entry = Entry.decode(flat[i + 1])
        if entry is not None:
            out[_text(flat[i])] = entry
    return out


def _seen(raw: Any) -> int:
    text = _text(raw) if raw else ""
    return int(text) if text.isdigit() else 0


class RedisPresenceStore:
    """A :class:`~roomcast.presence.base.PresenceStore` shared by every instance."""

    expires = True

    def __init__(
        self, url: str, *, ttl: float, chunk: int = 500, clock: Callable[[], int] = now_ms,
        cluster: bool = False, server_id: str = "",
    ) -> None:
        options: dict[str, Any] = {"max_connections": 8, "timeout": 2.0,
                                   "socket_timeout": 2.0, "socket_connect_timeout": 2.0}
        pool = pinned_pool(url, **options) if cluster \
            else lean_pool(url, **options)
        self._redis: aioredis.Redis = aioredis.Redis.from_pool(pool)
        # On a Redis Cluster every key carries one hash tag: the scripts touch a user's
        # keys besides the declared ones, which must all be in one slot.
        tag = CONTROL_TAG if cluster else ""
        self._keys = [tag + key for key in _KEYS]
        self._prefixes = (tag + USER_PREFIX, tag + SEEN_PREFIX)
        self._followers = tag + FOLLOWERS_PREFIX
        self._server_id = server_id or "anonymous"
        self._ttl_ms = int(ttl * 1000)
        self._chunk = chunk
        #: Unix ms; the scripts take the time from here, never from Redis (tests move it).
        self._clock = clock
        self._add = self._redis.register_script(_ADD)
        self._remove = self._redis.register_script(_REMOVE)
        self._sweep = self._redis.register_script(_SWEEP)
        self._read = self._redis.register_script(_READ)
        self._refresh = self._redis.register_script(_REFRESH)
        #: Adds and removes asked meanwhile (a connect or disconnect storm's) go out as
        #: one pipeline, in the order they were asked.
        self._changes = pipelined(self._redis)

    async def close(self) -> None:
        await self._redis.aclose()

    def _argv(self, *args: Any) -> list[Any]:
        return [self._prefixes[0], SEEN_TTL_MS, self._prefixes[1], *args]

    async def _run(self, script: Any, *args: Any) -> Any:
        try:
            if script is self._add or script is self._remove:
                return await run_script(self._changes, script, self._keys, self._argv(*args))
            return await script(keys=self._keys, args=self._argv(*args))
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"presence store unavailable: {exc}") from None

    @property
    def _hash_ttl(self) -> int:
        # Outlives the longest expiry in it; a user whose every instance died vanishes.
        return self._ttl_ms * 4 + 60_000

    async def add(self, user_id: UserId, conn_id: ConnId, entry: Entry) -> Change:
        now = self._clock()
        version, old, seen, followed = await self._run(
            self._add, user_id, conn_id, entry.encode(), now + self._ttl_ms, now, self._hash_ttl
        )
        entries = _entries(old)
        before = aggregate(user_id, list(entries.values()), _seen(seen))
        entries[conn_id] = entry
        return Change(before, aggregate(user_id, list(entries.values())), int(version),
                      followed=bool(followed))

    async def remove(self, user_id: UserId, conn_id: ConnId, *, grace: float) -> Change | None:
        result = await self._run(
            self._remove, user_id, conn_id, int(grace * 1000), self._clock()
        )
        return self._change(result) if result else None

    def _change(self, row: list[Any]) -> Change:
        uid, version, removed, remaining, seen, followed = row
        user = UserId(_text(uid))
        left = list(_entries(remaining).values())
        before = aggregate(user, left + list(_entries(removed).values()))
        return Change(before, aggregate(user, left, _seen(seen)), int(version),
                      followed=bool(followed))

    async def follow(self, user_ids: list[UserId], following: bool) -> None:
        try:
            for at in range(0, len(user_ids), self._chunk):
                pipe = self._redis.pipeline(transaction=False)
                for user in user_ids[at : at + self._chunk]:
                    key = self._followers + user
                    if following:
                        pipe.sadd(key, self._server_id)
                        pipe.pexpire(key, self._hash_ttl)
                    else:
                        pipe.srem(key, self._server_id)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"presence store unavailable: {exc}") from None

    async def presence(self, user_ids: list[UserId]) -> dict[UserId, UserPresence]:
        if not user_ids:
            return {}
        rows = await self._run(self._read, self._clock(), *user_ids)
        return {
            user: aggregate(user, list(_entries(live).values()), _seen(seen))
            for user, (live, seen) in zip(user_ids, rows, strict=True)
        }

    async def presence_stats(self) -> PresenceStats:
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.scard(self._keys[2])
            pipe.zcount(self._keys[0], f"({self._clock()}", "+inf")
            users, conns = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"presence store unavailable: {exc}") from None
        return PresenceStats(int(users), int(conns))

    async def refresh(self, conns: list[tuple[UserId, ConnId]]) -> list[tuple[UserId, ConnId]]:
        missing: list[tuple[UserId, ConnId]] = []
        for at in range(0, len(conns), self._chunk):
            chunk = conns[at : at + self._chunk]
            flat = [part for pair in chunk for part in pair]
            lost = await self._run(
                self._refresh, self._clock() + self._ttl_ms, self._hash_ttl, *flat
            )
            missing.extend(chunk[int(i)] for i in lost)
        return missing

    async def sweep(self) -> list[Change]:
        changes: list[Change] = []
        for _ in range(100):  # bounded: a huge backlog is finished by the next sweeps
            rows = await self._run(self._sweep, self._clock(), SWEEP_BATCH)
            if not rows:
                break
            changes.extend(self._change(row) for row in rows)
        return changes
