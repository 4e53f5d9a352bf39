"""The cluster-wide registry in Redis, under the Go gateway's keys.

Keys: ``websocket:connection:{id}`` (JSON, 1 h TTL), ``websocket:user:{user_id}``
(set of connection ids, 1 h), ``websocket:room:{id}`` (set of connection ids, 2 h),
plus ``roomcast:server:{server_id}`` (this instance's connection count, short TTL),
``roomcast:servers`` (sorted set of instances by expiry, so totals read O(instances)
keys instead of scanning the keyspace) and ``roomcast:room_name:{room}`` (a room's
display name, with the room key's TTL, so names do not pile up forever).
A connection whose instance key has expired is treated as gone and pruned on
read, so a crashed instance disappears from listings after the instance TTL.
Writes are batched, one script call per flush, and retried while Redis is down; a
join or leave waits for the flush that takes its change before counting its room
(:meth:`RedisRegistry.written`), and the changes made meanwhile form the next flush.
Entries Redis lost (restarted without persistence) are written again at the next refresh.

A compat key of another type than roomcast writes (the Go repository would store
``websocket:room:{id}`` as a string) is treated as absent and logged once: it never
fails a listing nor blocks the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from roomcast.batching import Batcher, execute, pipelined
from roomcast.broker.base import Target, ToAll, ToConnection, ToRoom, ToUser
from roomcast.broker.pool import lean_pool
from roomcast.broker.slots import CONTROL_TAG, pinned_pool
from roomcast.exceptions import BrokerUnavailable
from roomcast.hub import Hub, LocalConnection
from roomcast.logs import log_event
from roomcast.registry.base import ConnectionInfo, RoomInfo
from roomcast.registry.local import connection_info
from roomcast.registry.redis_writes import FLUSH, Writes
from roomcast.supervisor import supervise
from roomcast.types import ConnId, RoomId, room_type

_log = logging.getLogger("roomcast.registry")
_T = TypeVar("_T")

CONN_KEY = "websocket:connection:"
USER_KEY = "websocket:user:"
ROOM_KEY = "websocket:room:"
SERVER_KEY = "roomcast:server:"
#: Rooms with members on one instance; expires with the instance, so totals skip the dead.
SERVER_ROOMS_KEY = "roomcast:server_rooms:"
#: Instances by the time their key expires (score, Unix seconds).
SERVERS_KEY = "roomcast:servers"
ROOM_NAME_KEY = "roomcast:room_name:"
#: Where older versions kept every room name ever seen, unbounded: removed at start.
LEGACY_ROOM_NAMES = "roomcast:room_names"
CONN_TTL = 3600
ROOM_TTL = 7200
#: Above this many local members, room counts are approximate (SCARD).
EXACT_COUNT_LIMIT = 100
#: Seconds between extensions of the compat keys' TTLs (an hour long).
COMPAT_REFRESH = 600.0
#: Seconds an instance seen alive is not asked about again.
ALIVE_CACHE = 1.0
#: Seconds the writer waits after the first change, to write many in one pipeline.
WRITE_WINDOW = 0.005
#: Seconds :meth:`RedisRegistry.written` waits at most (a hanging Redis must not hold
#: joins longer than its socket timeout would).
WRITTEN_WAIT = 2.0


@dataclass(frozen=True, slots=True)
class _Keys:
    """The key names, behind one hash tag on a Redis Cluster (one slot: the scripts'
    and multi-key commands' keys must share it)."""

    tag: str

    @property
    def conn(self) -> str:
        return self.tag + CONN_KEY

    @property
    def user(self) -> str:
        return self.tag + USER_KEY

    @property
    def room(self) -> str:
        return self.tag + ROOM_KEY

    @property
    def server(self) -> str:
        return self.tag + SERVER_KEY

    @property
    def server_rooms(self) -> str:
        return self.tag + SERVER_ROOMS_KEY

    @property
    def servers(self) -> str:
        return self.tag + SERVERS_KEY

    @property
    def room_name(self) -> str:
        return self.tag + ROOM_NAME_KEY

    @property
    def legacy(self) -> str:
        return self.tag + LEGACY_ROOM_NAMES


class RedisRegistry:
    """Registers this instance's connections in Redis and reads the cluster's."""

    def __init__(self, url: str, hub: Hub, server_id: str, *, instance_ttl: float = 15.0,
                 cluster: bool = False) -> None:
        # Bounded: a connect storm must queue for connections, not open thousands.
        options: dict[str, Any] = {"max_connections": 16, "timeout": 2.0, "socket_timeout": 2.0,
                   "socket_connect_timeout": 2.0}
        pool = pinned_pool(url, **options) if cluster \
            else lean_pool(url, **options)
        self._redis: aioredis.Redis = aioredis.Redis.from_pool(pool)
        self._k = _Keys(CONTROL_TAG if cluster else "")
        self._cluster = cluster
        #: Set reads asked meanwhile (a connect storm's room counts) share one pipeline.
        self._reads = pipelined(self._redis)
        self._flush_script = self._redis.register_script(FLUSH)
        #: Big rooms' sizes: a join storm into one room asks one SCARD per batch.
        self._sizes: Batcher[str, int] = Batcher(self._scard_many, shared=True)
        #: Who listed the members of a set (counts): joins of one room meanwhile share it.
        self._owners: Batcher[str, dict[str, str]] = Batcher(self._owners_many, shared=True)
        self._announced = False
        self._alive_until: dict[str, float] = {}
        self._hub = hub
        self._server_id = server_id
        self._instance_ttl = instance_ttl
        self._rooms_key = self._k.server_rooms + server_id
        #: Connections whose state must be written (None: closed, delete it).
        self._dirty: dict[ConnId, LocalConnection | None] = {}
        #: What Redis holds for our connections: their user and rooms as last written.
        self._written: dict[ConnId, tuple[str, set[RoomId]]] = {}
        #: What the running flush writes, and how many flushes took a batch so far.
        self._writing: dict[ConnId, LocalConnection | None] = {}
        self._batches = 0
        #: Batch number -> set once that batch was written (or failed).
        self._flushed: dict[int, asyncio.Event] = {}
        #: The last flush failed: nobody waits for the retries.
        self._failing = False
        #: Someone waits in :meth:`written`: the write window is cut short.
        self._awaited = asyncio.Event()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        #: Compat keys found holding another type (logged once each).
        self._wrong_keys: set[str] = set()

    async def start(self) -> None:
        self._tasks = [
            supervise("registry-writer", self._writer),
            supervise("registry-refresher", self._refresher),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # A clean stop removes our entries at once instead of waiting for the TTL.
        for conn_id in list(self._written):
            self._dirty[conn_id] = None
        with contextlib.suppress(RedisError, OSError):
            await self._flush()
            await self._redis.delete(self._k.server + self._server_id, self._rooms_key)
            await self._redis.zrem(self._k.servers, self._server_id)
        await self._redis.aclose()
        for flushed in self._flushed.values():
            flushed.set()
        self._flushed.clear()

    # -- write side -----------------------------------------------------------

    def _mark(self, conn: LocalConnection, alive: bool) -> None:
        self._dirty[conn.id] = conn if alive else None
        self._wake.set()

    def connection_opened(self, conn: LocalConnection) -> None:
        self._mark(conn, True)

    def connection_closed(self, conn: LocalConnection) -> None:
        self._mark(conn, False)

    def rooms_changed(self, conn: LocalConnection) -> None:
        # Not yet opened (its first rooms being joined): written with them when it opens.
        if conn.id in self._dirty or conn.id in self._written:
            self._mark(conn, conn.id in self._hub.connections)

    async def written(self, conn: LocalConnection) -> None:
        if conn.id in self._dirty and not self._failing:
            batch = self._batches + 1
        elif conn.id in self._writing:
            batch = self._batches
        else:
            return
        flushed = self._flushed.get(batch)
        if flushed is None:
            flushed = self._flushed[batch] = asyncio.Event()
            # One bound per batch, not per waiter: a hanging Redis must not hold joins.
            asyncio.get_running_loop().call_later(WRITTEN_WAIT, flushed.set)
            self._awaited.set()
        await flushed.wait()

    async def _writer(self) -> None:
        delay = 0.1
        while True:
            await self._wake.wait()
            # A short window gathers many marks into one write, unless someone waits for
            # theirs: in a storm the next marks gather while this write is under way.
            if not self._awaited.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(WRITE_WINDOW):
                        await self._awaited.wait()
            self._awaited.clear()
            self._wake.clear()
            try:
                await self._flush()
                delay = 0.1
            except (RedisError, OSError) as exc:
                log_event(_log, "registry_write_failed", logging.WARNING, error=str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                self._wake.set()

    async def _flush(self) -> None:
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, {}
        self._writing = dirty
        self._batches += 1
        batch = self._batches
        try:
            writes = Writes()
            new_rooms: set[RoomId] = set()
            left_rooms: set[RoomId] = set()
            for conn_id, conn in dirty.items():
                self._write(writes, conn_id, conn, new_rooms, left_rooms)
            if new_rooms:
                writes.add_all(self._rooms_key, sorted(new_rooms), max(1, int(self._instance_ttl)))
                for room in new_rooms:
                    writes.set(self._k.room_name + room, self._hub.room_names.get(room, room),
                               ROOM_TTL)
            self._forget_rooms(writes, left_rooms)
            await self._run_writes(writes)
            if not self._announced:
                # Afterwards the refresher keeps the key (and checks it) on its own.
                pipe = self._redis.pipeline(transaction=False)
                self._set_instance_key(pipe)
                self._check_kept(self._checked(pipe.command_stack,
                                               await pipe.execute(raise_on_error=False))[0])
            self._failing = False
        except BaseException:
            self._failing = True
            # Keep what was not written; newer marks win.
            for conn_id, conn in dirty.items():
                self._dirty.setdefault(conn_id, conn)
            raise
        finally:
            self._writing = {}
            flushed = self._flushed.pop(batch, None)
            if flushed is not None:
                flushed.set()

    async def _run_writes(self, writes: Writes) -> None:
        """One call of the flush script (loaded again when Redis lost it)."""
        keys, argv = writes.script_args()
        if not keys:
            return
        # redis-py's Script sends EVALSHA, and the source again if Redis lost it.
        wrong = await self._flush_script(keys=keys, args=argv)
        for key in wrong or []:
            self._wrong_type(key.decode() if isinstance(key, bytes) else str(key))

    def _write(self, writes: Writes, conn_id: ConnId, conn: LocalConnection | None,
               new_rooms: set[RoomId], left_rooms: set[RoomId]) -> None:
        user, old_rooms = self._written.pop(conn_id, ("", set()))
        if conn is None:
            writes.delete(self._k.conn + conn_id)
            if user:
                writes.remove(self._k.user + user, conn_id)
            for room in old_rooms:
                writes.remove(self._k.room + room, conn_id)
            left_rooms.update(old_rooms)
            return
        rooms = set(conn.rooms)
        info = connection_info(conn, self._server_id).to_json()
        try:
            entry = orjson.dumps(info)
        except TypeError:
            # Claims are checked at the handshake; should one still not encode, that one
            # connection goes unlisted instead of every later write failing behind it.
            log_event(_log, "registry_entry_unencodable", logging.ERROR, conn=conn_id)
            return
        writes.set(self._k.conn + conn_id, entry, CONN_TTL)
        writes.add(self._k.user + conn.user_id, conn_id, CONN_TTL)
        for room in rooms - old_rooms:
            writes.add(self._k.room + room, conn_id, ROOM_TTL)
        new_rooms.update(rooms - old_rooms)
        for room in old_rooms - rooms:
            writes.remove(self._k.room + room, conn_id)
        left_rooms.update(old_rooms - rooms)
        self._written[conn_id] = (conn.user_id, rooms)

    def _forget_rooms(self, writes: Writes, rooms: set[RoomId]) -> None:
        """Rooms this instance no longer has members in leave its room set."""
        writes.remove_all(self._rooms_key, [room for room in rooms if room not in self._hub.rooms])

    async def _refresher(self) -> None:
        """Keep our instance key alive often, and the long compat TTLs now and then."""
        loop = asyncio.get_running_loop()
        last_compat = loop.time()
        # Older versions' unbounded name hash (names are per room now); off the start path.
        with contextlib.suppress(RedisError, OSError):
            await self._redis.unlink(self._k.legacy)
        while True:
            await asyncio.sleep(self._instance_ttl / 3)
            try:
                pipe = self._redis.pipeline(transaction=False)
                self._set_instance_key(pipe)
                pipe.expire(self._rooms_key, max(1, int(self._instance_ttl)))
                self._check_kept((await pipe.execute())[0])
                if loop.time() - last_compat >= COMPAT_REFRESH:
                    await self._refresh_compat_ttls()
                    last_compat = loop.time()
            except (RedisError, OSError) as exc:
                log_event(_log, "registry_refresh_failed", logging.WARNING, error=str(exc))
                # Redis may come back empty (no persistence): write everything again then.
                self._rewrite_all()

    def _set_instance_key(self, pipe: Any) -> None:
        """SET ... GET: the old value tells whether Redis still had what we wrote.

        Also lists the instance, with its expiry, in ``roomcast:servers`` (read by totals).
        """
        ttl = max(1, int(self._instance_ttl))
        pipe.set(self._k.server + self._server_id, len(self._hub.connections), ex=ttl, get=True)
        pipe.zadd(self._k.servers, {self._server_id: time.time() + ttl})

    def _checked(self, commands: list[Any], results: list[Any]) -> list[Any]:
        """Pipeline results with WRONGTYPE errors skipped (logged once per key);
        any other error is raised, so the writer retries."""
        for command, result in zip(commands, results, strict=False):
            if not isinstance(result, Exception):
                continue
            if isinstance(result, ResponseError) and str(result).startswith("WRONGTYPE"):
                args = command[0] if isinstance(command, tuple) else command
                self._wrong_type(str(args[1]) if len(args) > 1 else "?")
                continue
            raise result
        return results

    def _wrong_type(self, key: str) -> None:
        if key in self._wrong_keys:
            return
        if len(self._wrong_keys) < 1000:
            self._wrong_keys.add(key)
        log_event(_log, "registry_key_wrong_type", logging.WARNING, key=key[:200],
                  action="skipped (another writer, e.g. the Go repository, owns this key)")

    def _check_kept(self, previous: object) -> None:
        if previous is None and self._announced:
            # Our key vanished: Redis restarted empty, was flushed, or we stalled past the TTL.
            self._rewrite_all()
        self._announced = True

    def _rewrite_all(self) -> None:
        for conn in self._hub.connections.values():
            self._dirty[conn.id] = conn
        self._written.clear()
        self._wake.set()

    async def _refresh_compat_ttls(self) -> None:
        """Extend the compat keys' TTLs, a chunk per round trip (10,000 connections: 15)."""
        written = list(self._written.items())
        for at in range(0, len(written), 2000):
            pipe = self._redis.pipeline(transaction=False)
            for conn_id, (user, rooms) in written[at : at + 2000]:
                pipe.expire(self._k.conn + conn_id, CONN_TTL)
                pipe.expire(self._k.user + user, CONN_TTL)
                for room in rooms:
                    pipe.expire(self._k.room + room, ROOM_TTL)
            await pipe.execute()
        # Names of the rooms with members here live as long as the rooms.
        live_rooms = list(self._hub.rooms)
        for at in range(0, len(live_rooms), 2000):
            pipe = self._redis.pipeline(transaction=False)
            for room in live_rooms[at : at + 2000]:
                pipe.expire(self._k.room_name + room, ROOM_TTL)
            await pipe.execute()

    # -- read side --------------------------------------------------------------

    async def _call(self, coro: Any) -> Any:
        try:
            return await coro
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"redis registry unavailable: {exc}") from None

    async def _live(self, conn_ids: list[str]) -> list[ConnectionInfo]:
        """Connection infos for ids, dropping those gone or on a dead instance."""
        if not conn_ids:
            return []
        return await self._alive(
            await self._call(self._redis.mget([self._k.conn + c for c in conn_ids]))
        )

    async def _read_set(self, set_key: str, read: Awaitable[_T], empty: _T) -> _T:
        """A read of a user or room set: another type under its name (the Go gateway's,
        say) is logged and reads as ``empty``; Redis failing is BrokerUnavailable."""
        try:
            return await read
        except ResponseError as exc:
            if not str(exc).startswith("WRONGTYPE"):
                raise BrokerUnavailable(f"redis registry unavailable: {exc}") from None
            self._wrong_type(set_key)
            return empty
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"redis registry unavailable: {exc}") from None

    async def _live_in(self, set_key: str) -> list[ConnectionInfo]:
        """The live connections of a user or room set, in one round trip (SORT ... GET)."""
        return await self._alive(await self._read_set(set_key, self._entries_in(set_key), []))

    async def _entries_in(self, set_key: str) -> list[bytes | None]:
        if self._cluster:
            # SORT ... GET is refused by a Cluster, even within one slot.
            members = await self._redis.smembers(set_key)
            ids = sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)
            return cast(list[bytes | None], await self._redis.mget(
                [self._k.conn + i for i in ids])) if ids else []
        return cast(list[bytes | None], await self._reads.get(
            lambda p: p.sort(set_key, by="nosort", get=[self._k.conn + "*"])))

    async def _others_in(self, set_key: str) -> set[str]:
        """Ids in a user or room set registered by other live instances.

        What a count needs, without a :class:`ConnectionInfo` per member. Ours are
        counted from the hub, as Redis lags our writes by a round trip (a connection
        that just left is still listed).
        """
        owners = await self._read_set(set_key, self._owners.get(set_key), {})
        alive = await self._alive_servers(set(owners.values()))
        return {conn for conn, server in owners.items() if server in alive}

    async def _owners_many(self, keys: list[str]) -> list[dict[str, str] | BaseException]:
        """For each set: its members listed by other instances, and by which one."""
        if self._cluster:
            # SORT ... GET is refused by a Cluster: member infos one set at a time.
            out: list[dict[str, str] | BaseException] = []
            for key in keys:
                try:
                    infos = await self._live_in(key)
                except BrokerUnavailable as exc:
                    out.append(exc)
                    continue
                out.append({i.id: i.server_id for i in infos if i.server_id != self._server_id})
            return out
        pattern = self._k.conn + "*"
        replies = await execute(self._redis, [
            functools.partial(_ids_and_entries, key=key, pattern=pattern) for key in keys])
        return [r if isinstance(r, BaseException) else self._owners_of(r) for r in replies]

    def _owners_of(self, flat: list[bytes | None]) -> dict[str, str]:
        owners = {}
        for at in range(0, len(flat) - 1, 2):
            conn, raw = flat[at], flat[at + 1]
            if raw is None or conn is None:
                continue
            # Invalid JSON, a non-object, a member that is not UTF-8: not a connection of ours.
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                server = orjson.loads(raw).get("server_id", "")
                if server != self._server_id and isinstance(server, str):
                    owners[conn.decode()] = server
        return owners

    async def _scard_many(self, keys: list[str]) -> list[int | BaseException]:
        return await execute(self._redis, [functools.partial(_scard, key=key) for key in keys])

    async def _alive(self, raws: list[bytes | None]) -> list[ConnectionInfo]:
        infos = []
        for raw in raws:
            if raw is None:
                continue
            with contextlib.suppress(orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
                d = orjson.loads(raw)
                infos.append(
                    ConnectionInfo(
                        id=d["id"],
                        user_id=d["user_id"],
                        character_id=d.get("character_id"),
                        character_name=d.get("character_name", d["user_id"]),
                        rooms=list(d.get("rooms", [])),
                        created_at=d.get("created_at", ""),
                        server_id=d.get("server_id", ""),
                    )
                )
        alive = await self._alive_servers({i.server_id for i in infos})
        return sorted((i for i in infos if i.server_id in alive), key=lambda i: i.id)

    async def _alive_servers(self, servers: set[str]) -> set[str]:
        """Which instances still refresh their key; a yes is trusted for a second."""
        now = asyncio.get_running_loop().time()
        unknown = sorted(
            s for s in servers if s != self._server_id and self._alive_until.get(s, 0.0) < now
        )
        if unknown:
            values = await self._call(self._redis.mget([self._k.server + s for s in unknown]))
            for server, value in zip(unknown, values, strict=True):
                if value is None:
                    self._alive_until.pop(server, None)
                else:
                    self._alive_until[server] = now + ALIVE_CACHE
        return {s for s in servers if s == self._server_id or self._alive_until.get(s, 0.0) >= now}

    async def _scan(self, prefix: str) -> list[str]:
        keys = []
        async for key in self._redis.scan_iter(match=prefix + "*", count=1000):
            keys.append((key.decode() if isinstance(key, bytes) else key)[len(prefix) :])
        return keys

    async def connections(
        self,
        *,
        user_id: str | None = None,
        character_id: int | None = None,
        room_id: str | None = None,
    ) -> list[ConnectionInfo]:
        if user_id is not None:
            found = await self._live_in(self._k.user + user_id)
        elif room_id is not None:
            found = await self._live_in(self._k.room + room_id)
        else:
            found = await self._live(await self._call(self._scan(self._k.conn)))
        # This instance's own connections come from the hub, as in count(): Redis lags
        # our writes by a round trip, and every instance must give the same answer.
        local = [connection_info(c, self._server_id) for c in self._hub.connections.values()]
        merged = [i for i in found if i.server_id != self._server_id] + local
        out = [
            i
            for i in merged
            if i.matches(user_id=user_id, character_id=character_id, room_id=room_id)
        ]
        return sorted(out, key=lambda c: (c.created_at, c.id))

    async def connection(self, conn_id: str) -> ConnectionInfo | None:
        local = self._hub.connections.get(ConnId(conn_id))
        if local is not None:
            # Ours: current, and known while Redis is down (local direct messages go on).
            return connection_info(local, self._server_id)
        found = await self._live([conn_id])
        return found[0] if found else None

    async def rooms(
        self, *, type: str | None = None, member_id: str | None = None
    ) -> list[RoomInfo]:
        out = []
        for room in sorted(await self._call(self._scan(self._k.room))):
            if type is not None and str(room_type(room)) != type:
                continue
            members = await self._live_in(self._k.room + room)
            if not members:
                continue
            if member_id is not None and not any(
                m.id == member_id or m.user_id == member_id for m in members
            ):
                continue
            out.append(await self._room_info(room, len(members)))
        return out

    async def room(self, room_id: str) -> RoomInfo | None:
        members = await self._live_in(self._k.room + room_id)
        if not members:
            return None
        return await self._room_info(room_id, len(members))

    async def _room_info(self, room: str, count: int) -> RoomInfo:
        name = self._hub.room_names.get(RoomId(room))
        if name is None:
            with contextlib.suppress(ResponseError):  # a wrong type: the room id will do
                name = await self._call(self._redis.get(self._k.room_name + room))
        kind = room_type(room)
        return RoomInfo(
            id=room,
            type=str(kind) if kind else "unknown",
            name=name.decode() if isinstance(name, bytes) else (name or room),
            member_count=count,
        )

    async def count(self, target: Target) -> int:
        if isinstance(target, ToRoom):
            local = len(self._hub.rooms.get(target.room, ()))
            if local > EXACT_COUNT_LIMIT:
                # Big rooms (join storms): one O(1) SCARD instead of reading every member.
                try:
                    approx = await self._call(self._sizes.get(self._k.room + target.room))
                except ResponseError:  # another type under the compat name: ours only
                    self._wrong_type(self._k.room + target.room)
                    approx = 0
                return max(int(approx), local) - (target.exclude is not None)
            ids = await self._others_in(self._k.room + target.room)
            ids.update(self._hub.rooms.get(target.room, ()))
            ids.discard(target.exclude or "")
            return len(ids)
        if isinstance(target, ToUser):
            ids = await self._others_in(self._k.user + target.user_id)
            return len(ids.union(self._hub.users.get(target.user_id, ())))
        if isinstance(target, ToConnection):
            if target.conn_id in self._hub.connections:
                return 1
            return 1 if await self.connection(target.conn_id) else 0
        assert isinstance(target, ToAll)
        return (await self.totals())[0]

    async def totals(self) -> tuple[int, int]:
        """Cluster-wide counts from the instance list: O(instances), no keyspace scan."""
        now = time.time()
        pipe = self._redis.pipeline(transaction=False)
        pipe.zremrangebyscore(self._k.servers, "-inf", now)
        pipe.zrange(self._k.servers, 0, -1)
        members = (await self._call(pipe.execute()))[1]
        servers = [m.decode() if isinstance(m, bytes) else str(m) for m in members]
        counts = (
            await self._call(self._redis.mget([self._k.server + s for s in servers]))
            if servers else []
        )
        others = sum(
            int(c)
            for s, c in zip(servers, counts, strict=True)
            if c is not None and s != self._server_id
        )
        alive = [s for s, c in zip(servers, counts, strict=True) if c is not None]
        keys = [self._k.server_rooms + s for s in alive if s != self._server_id]
        remote = await self._call(self._redis.sunion(keys)) if keys else set()
        rooms = {r.decode() if isinstance(r, bytes) else str(r) for r in remote}
        return others + len(self._hub.connections), len(rooms | set(self._hub.rooms))


def _scard(pipe: Any, key: str) -> Any:
    return pipe.scard(key)


def _ids_and_entries(pipe: Any, key: str, pattern: str) -> Any:
    """A set's members, each followed by its connection entry (None when gone)."""
    return pipe.sort(key, by="nosort", get=["#", pattern])
