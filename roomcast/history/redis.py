"""The Redis history engine: a stream per room, appended and published in one round trip.

Keys of a room share the hash tag ``{room}``, so a room lives on one Cluster slot:

- ``roomcast:{<room>}:meta``: hash ``e`` (epoch), ``s`` (top offset); ``meta_ttl``;
- ``roomcast:{<room>}:stream``: a Redis stream whose entry ids are ``<offset>-0``
  (field ``d``: the stored envelope); capped at ``size``, expires ``ttl`` after the last
  append;
- ``roomcast:{<room>}:ids``: sorted set of the retained message ids by offset, so a
  retried append of the same id neither stores nor publishes it twice.

One Lua script creates the epoch when the meta is missing (a new room, or Redis lost its
data: the epoch changes), increments the offset, stores, trims, refreshes the TTLs and
PUBLISHes the envelope to the other instances, so every instance sees a room's offsets
in the order Redis assigned them.

On a Redis Cluster the scripts go to the master of the room's slot, PUBLISH becomes
SPUBLISH (the room's sharded channel has the same slot), and the meta also records the
id of the master that wrote it (``n``). A failover promotes a replica, which may lack
the last appends its master acknowledged (replication is asynchronous): its offsets
would go back and be given again to other messages, which receivers and recovering
clients would take for ones they already have. So a room found written by another
node starts a new epoch: its clients are told ``recovered: false``, never a silent
gap. A resharding moves rooms to other masters the same way (their history restarts).
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from roomcast.batching import Batcher, pipelined, run_script
from roomcast.broker import redis_wire as wire
from roomcast.broker.base import Target, ToRoom
from roomcast.broker.pool import lean_pool
from roomcast.broker.redis_once import exchange_once
from roomcast.broker.slots import Node, SlotMap
from roomcast.exceptions import BrokerError, BrokerUnavailable, ConfigError, DeliveryUnknown
from roomcast.history.base import (
    Appended,
    Position,
    Publication,
    Retention,
    Route,
    Slice,
    new_epoch,
)
from roomcast.history.service import Router
from roomcast.types import RoomId

_APPEND = """
local meta, stream, ids = KEYS[1], KEYS[2], KEYS[3]
local size, msg_id = tonumber(ARGV[3]), ARGV[6]
local epoch = redis.call('HGET', meta, 'e')
if epoch and ARGV[10] ~= '' and redis.call('HGET', meta, 'n') ~= ARGV[10] then
  epoch = false
end
if not epoch then
  epoch = ARGV[2]
  redis.call('DEL', stream, ids)
  redis.call('HSET', meta, 'e', epoch, 's', 0, 'n', ARGV[10])
end
if msg_id ~= '' then
  local seen = redis.call('ZSCORE', ids, msg_id)
  if seen then
    local entry = redis.call('XRANGE', stream, seen .. '-0', seen .. '-0')
    local body = ''
    if entry[1] then body = entry[1][2][2] end
    return {epoch, tonumber(seen), 0, body}
  end
end
local offset = redis.call('HINCRBY', meta, 's', 1)
redis.call('PEXPIRE', meta, ARGV[5])
local body = string.sub(ARGV[1], 1, -2) .. ',"offset":' .. offset .. ',"epoch":"' .. epoch .. '"}'
redis.call('XADD', stream, 'MAXLEN', size, offset .. '-0', 'd', body)
redis.call('PEXPIRE', stream, ARGV[4])
if msg_id ~= '' then
  redis.call('ZADD', ids, offset, msg_id)
  redis.call('ZREMRANGEBYRANK', ids, 0, -(size + 1))
  redis.call('PEXPIRE', ids, ARGV[4])
end
if ARGV[7] ~= '' then
  local command = 'PUBLISH'
  if ARGV[10] ~= '' then command = 'SPUBLISH' end
  redis.call(command, ARGV[7], ARGV[8] .. body .. ARGV[9])
end
return {epoch, offset, 1, body}
"""

_READ = """
local meta, stream, ids = KEYS[1], KEYS[2], KEYS[3]
local epoch = redis.call('HGET', meta, 'e')
if epoch and ARGV[6] ~= '' and redis.call('HGET', meta, 'n') ~= ARGV[6] then
  epoch = false
end
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', stream, ids)
  redis.call('HSET', meta, 'e', epoch, 's', 0, 'n', ARGV[6])
  redis.call('PEXPIRE', meta, ARGV[2])
end
local top = tonumber(redis.call('HGET', meta, 's') or '0')
local limit = tonumber(ARGV[4])
local entries = {}
if limit > 0 then
  local after = '(' .. ARGV[3] .. '-0'
  if ARGV[5] == '1' then
    entries = redis.call('XREVRANGE', stream, '+', after, 'COUNT', limit)
  else
    entries = redis.call('XRANGE', stream, after, '+', 'COUNT', limit)
  end
end
return {epoch, top, entries}
"""

_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
#: Stands for the node id on a single Redis (no failover to detect).
_NO_NODE = ""


def keys(room: str) -> tuple[str, str, str]:
    """The meta, stream and ids keys of a room (one hash slot)."""
    tag = f"roomcast:{{{room}}}:"
    return tag + "meta", tag + "stream", tag + "ids"


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


class RedisHistory:
    """A :class:`~roomcast.history.base.HistoryEngine` on Redis streams.

    Args:
        url: ``redis://`` or ``rediss://`` URL (of any node, with ``cluster``).
        timeout: bound on connecting and on each call.
        cluster: ``url`` is a Redis Cluster's: each room goes to its slot's master.
    """

    def __init__(self, url: str, *, timeout: float = 1.0, max_connections: int = 64,
                 cluster: bool = False) -> None:
        self._slots = SlotMap(
            url, max_connections=max_connections, timeout=timeout, socket_timeout=timeout,
            socket_connect_timeout=timeout, retry=Retry(NoBackoff(), retries=0),
        ) if cluster else None
        try:
            pool = lean_pool(
                url, max_connections=max_connections, timeout=timeout,
                socket_timeout=timeout, socket_connect_timeout=timeout,
                # Reads may be retried; appends are sent once (see _run_append).
                retry=Retry(NoBackoff(), retries=1),
            )
        except ValueError as exc:
            raise ConfigError(f"invalid REDIS_URL: {exc}") from None
        self._redis = aioredis.Redis.from_pool(pool)
        self._append = self._redis.register_script(_APPEND)
        self._read = self._redis.register_script(_READ)
        #: Reads asked meanwhile (a connect storm's stream tops) go out as one pipeline.
        self._reads = pipelined(self._redis)
        #: A join storm into one room asks its top once per batch.
        self._tops: Batcher[tuple[RoomId, Retention], Position] = Batcher(
            self._tops_of, shared=True)

    async def append(
        self, room: RoomId, envelope: bytes, retention: Retention, *,
        message_id: str | None = None, route: Route | None = None,
    ) -> Appended:
        if not envelope.endswith(b"}"):
            raise ValueError("an envelope must be a JSON object")
        args: list[str | int | bytes] = [
            envelope, new_epoch(), retention.size, _ms(retention.ttl), _ms(retention.meta_ttl),
            message_id or "", route.channel if route else "", route.head if route else b"",
            route.tail if route else b"",
        ]
        detached = None
        if self._slots is not None and route is not None \
                and key_slot(route.channel.encode()) != key_slot(keys(room)[0].encode()):
            # A user's channel is not in the slot of the user's stream: a script may not
            # touch it, so it is published after the append (receivers drop a repeat).
            detached, args[6:9] = route, ["", b"", b""]
        epoch, offset, new, body = await self._run_append([*keys(room), *args])
        if detached is not None:
            data = detached.head + bytes(body) + detached.tail
            await self._spublish(detached.channel, data)
        return Appended(Position(_text(epoch), int(offset)), bytes(body), new=bool(new))

    async def _spublish(self, channel: str, data: bytes) -> None:
        assert self._slots is not None

        async def spublish(conn: AbstractConnection, _node: Node) -> None:
            await conn.send_command("SPUBLISH", channel, data)
            await conn.read_response()

        await self._slots.exchange(channel, spublish, what="publish")

    async def _run_append(self, keys_and_args: list[str | int | bytes]) -> Any:
        """Run the append script. A connection the server closed (a Redis restart) is
        replaced and the script sent again: safe, as an id already appended is neither
        stored nor published twice. A timeout is not retried (Redis is stalled, the
        script may still run): DeliveryUnknown says so."""
        for attempt in (1, 2):
            try:
                return await self._send_append(keys_and_args)
            except DeliveryUnknown as exc:
                if attempt == 2 or isinstance(exc.__cause__, RedisTimeoutError | TimeoutError):
                    raise
        raise AssertionError("unreachable")

    async def _send_append(self, keys_and_args: list[str | int | bytes]) -> Any:
        return await self._script(_APPEND, self._append.sha, keys_and_args, what="append")

    async def _script(self, script: str, sha: str, keys_and_args: list[str | int | bytes],
                      *, what: str, idempotent: bool = False) -> Any:
        """Run one of the scripts (3 keys) once, with the node id as its last argument:
        on a Cluster, on the master of the room's slot."""

        async def exchange(conn: AbstractConnection, node: Node | None = None) -> Any:
            sent = [*keys_and_args, node.id if node is not None else _NO_NODE]
            try:
                await conn.send_command("EVALSHA", sha, 3, *sent)
                return await conn.read_response()
            except NoScriptError:
                # Redis lost its scripts (a restart): nothing ran, so send it whole.
                await conn.send_command("EVAL", script, 3, *sent)
                return await conn.read_response()

        if self._slots is not None:
            return await self._slots.exchange(str(keys_and_args[0]), exchange, what=what,
                                              idempotent=idempotent)
        return await exchange_once(self._redis.connection_pool, exchange, what=what)

    async def read(
        self, room: RoomId, retention: Retention, *, since: int = 0, limit: int,
        reverse: bool = False,
    ) -> Slice:
        args: list[str | int | bytes] = [
            new_epoch(), _ms(retention.meta_ttl), max(0, since), max(0, limit),
                "1" if reverse else "0"]
        if self._slots is not None:
            found = await self._script(_READ, self._read.sha, [*keys(room), *args],
                                       what="history read", idempotent=True)
        else:
            found = await self._call(run_script(self._reads, self._read, list(keys(room)),
                                                [*args, _NO_NODE]))
        epoch, top, entries = found
        publications = [
            Publication(int(_text(entry_id).split("-", 1)[0]), bytes(fields[1]))
            for entry_id, fields in entries
        ]
        return Slice(Position(_text(epoch), int(top)), publications)

    async def top(self, room: RoomId, retention: Retention) -> Position:
        return await self._tops.get((room, retention))

    async def _tops_of(
        self, keys: list[tuple[RoomId, Retention]]
    ) -> list[Position | BaseException]:
        slices = await asyncio.gather(
            *(self.read(room, retention, limit=0) for room, retention in keys),
            return_exceptions=True)
        return [s if isinstance(s, BaseException) else s.top for s in slices]

    async def close(self) -> None:
        await self._redis.aclose()
        if self._slots is not None:
            await self._slots.aclose()

    @staticmethod
    async def _call(pending: Any) -> Any:
        try:
            return await pending
        except _UNREACHABLE as exc:
            raise BrokerUnavailable(f"Redis unreachable: {str(exc)[:200]}") from exc
        except RedisError as exc:
            raise BrokerError(f"Redis history failed: {str(exc)[:200]}") from exc


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def redis_router(server_id: str, *, sharded: bool, cluster: bool = False) -> Router:
    """The route of a stored publication to the other instances, in the broker's wire
    format (the payload another instance's listener parses as any publication); on a
    Cluster, the sharded channel."""
    head = wire.payload_prefix(server_id)

    def route(target: Target, payload: bytes) -> tuple[Route | None, bytes]:
        channel, envelope = wire.outgoing(target, payload, sharded=sharded or cluster)
        if cluster:
            channel = wire.shard_channel(channel)
        exclude = target.exclude if isinstance(target, ToRoom) else None
        # wrap() of nothing is the tail alone: ',"timestamp":…}'.
        return Route(channel, head, wire.wrap(b"", b"", exclude)), envelope

    return route
