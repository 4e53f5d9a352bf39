"""Where a Redis Cluster keeps each hash slot, and connections that follow it.

:class:`SlotMap` reads ``CLUSTER SLOTS`` from any node it knows (the seed URL first) and
gives, per master, a pool of connections. A connection that fails, or an answer that
says the slot is elsewhere (``MOVED``, ``ASK``, ``CLUSTERDOWN``, ``READONLY``), marks the
map stale: the next use reads the slots again, so a failover or a resharding is
followed within one failed call. :func:`pinned_pool` is a pool for one slot's owner,
whatever node that is, for stores whose keys all carry one hash tag.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection, Connection, parse_url
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from roomcast.broker.packing import packed_class
from roomcast.broker.redis_once import describe, exchange_once
from roomcast.exceptions import BrokerError, BrokerUnavailable, ConfigError, DeliveryUnknown
from roomcast.logs import log_event

_log = logging.getLogger("roomcast.broker.slots")

T = TypeVar("T")

#: Hash tag of the keys that are not a room's (registry, presence, denials, memberships,
#: stats): one slot, so their scripts and multi-key commands stay legal in a Cluster.
CONTROL_TAG = "{roomcast}:"
#: Answers meaning the slot map is out of date (nothing was executed).
_MOVED = ("MOVED", "ASK", "CLUSTERDOWN", "READONLY", "TRYAGAIN")
#: Seconds between two reads of the slots, however many calls fail meanwhile.
REFRESH_INTERVAL = 0.2


@dataclass(frozen=True, slots=True)
class Node:
    """A master: its address and Cluster node id (a new master has a new id)."""

    host: str
    port: int
    id: str


def moved(exc: BaseException) -> bool:
    """Whether a Redis error says the slot lives elsewhere now (nothing ran)."""
    return isinstance(exc, ResponseError) and str(exc).startswith(_MOVED)


class SlotMap:
    """The slots of a Redis Cluster, read from its nodes, and a pool per master.

    Args:
        url: a ``redis://`` or ``rediss://`` URL of any node (more are learnt).
        pool_options: for every node's pool (timeouts, retry, ``max_connections``).
    """

    def __init__(self, url: str, **pool_options: Any) -> None:
        try:
            options = parse_url(url)
        except ValueError as exc:
            raise ConfigError(f"invalid REDIS_URL: {exc}") from None
        options.pop("db", None)  # a Cluster has database 0 only
        self._seed = (str(options.pop("host", "127.0.0.1")), int(options.pop("port", 6379)))
        self._options = {**options, **pool_options}
        base = packed_class(self._options.pop("connection_class", Connection))
        self._connection_class = _watched(base, self.stale)
        self._starts: list[int] = []
        self._owners: list[tuple[int, int, Node]] = []
        #: Every node seen (replicas too): where the slots are read from next time.
        self._known: list[tuple[str, int]] = []
        self._pools: dict[tuple[str, int], aioredis.BlockingConnectionPool] = {}
        self._stale = True
        self._refreshing: asyncio.Task[None] | None = None
        self._last_refresh = -REFRESH_INTERVAL
        #: Times the slots were read and differed from before (failovers, reshardings).
        self.changes = 0

    # -- the map ------------------------------------------------------------------

    def stale(self) -> None:
        """Read the slots again before the next use (a call failed, or was MOVED)."""
        self._stale = True

    async def ensure(self) -> None:
        """Read the slots if they may have changed (one read for concurrent callers).

        Raises:
            BrokerUnavailable: no node answered.
        """
        if not self._stale and self._owners:
            return
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._refresh())
        await asyncio.shield(self._refreshing)

    async def _refresh(self) -> None:
        loop = asyncio.get_running_loop()
        wait = self._last_refresh + REFRESH_INTERVAL - loop.time()
        if wait > 0 and self._owners:
            await asyncio.sleep(wait)  # a storm of failures reads the slots once
        self._last_refresh = loop.time()
        candidates = [*self._known, self._seed]
        errors = []
        for host, port in dict.fromkeys(candidates):
            try:
                raw = await self._cluster_slots(host, port)
            except (RedisError, OSError) as exc:
                errors.append(f"{host}:{port}: {describe(exc)}")
                continue
            owners, known = _parse_slots(raw, host)
            if not owners:
                errors.append(f"{host}:{port}: no slots")
                continue
            if owners != self._owners:
                if self._owners:
                    self.changes += 1
                    log_event(_log, "redis_cluster_slots_changed", logging.WARNING,
                              masters=sorted({f"{n.host}:{n.port}" for _, _, n in owners}))
                self._owners = owners
                self._starts = [start for start, _, _ in owners]
            self._known = known
            self._stale = False
            return
        raise BrokerUnavailable(f"no Redis Cluster node answered: {'; '.join(errors)[:300]}")

    async def _cluster_slots(self, host: str, port: int) -> Any:
        options = {k: v for k, v in self._options.items()
                   if k not in ("max_connections", "timeout", "retry")}
        conn = self._connection_class(host=host, port=port, **options)
        try:
            await conn.connect()
            await conn.send_command("CLUSTER", "SLOTS")
            return await conn.read_response()
        finally:
            await conn.disconnect()

    def owner(self, slot: int) -> Node:
        """The master of ``slot`` (as last read).

        Raises:
            BrokerUnavailable: the slots were never read, or no master holds it.
        """
        at = bisect.bisect_right(self._starts, slot) - 1
        if at < 0 or self._owners[at][1] < slot:
            raise BrokerUnavailable(f"no Redis Cluster master holds slot {slot}")
        return self._owners[at][2]

    def owner_of(self, key: str) -> Node:
        return self.owner(key_slot(key.encode()))

    def masters(self) -> list[Node]:
        return list(dict.fromkeys(node for _, _, node in self._owners))

    # -- connections ----------------------------------------------------------------

    def pool(self, node: Node) -> aioredis.BlockingConnectionPool:
        """The pool of connections to ``node``."""
        address = (node.host, node.port)
        pool = self._pools.get(address)
        if pool is None:
            pool = aioredis.BlockingConnectionPool(
                connection_class=self._connection_class, host=node.host, port=node.port,
                **self._options)
            self._pools[address] = pool
        return pool

    def client(self, node: Node, **options: Any) -> aioredis.Redis:
        """A client of its own (one connection, not pooled): a subscriber's."""
        merged = {k: v for k, v in self._options.items() if k not in ("max_connections",
                                                                        "timeout")}
        merged.update(options)
        pool = aioredis.ConnectionPool(connection_class=self._connection_class,
                                       host=node.host, port=node.port, **merged)
        return aioredis.Redis.from_pool(pool)

    async def exchange(self, key: str, exchange: Callable[[AbstractConnection, Node],
                                                          Awaitable[T]], *, what: str,
                       idempotent: bool = False) -> T:
        """:func:`~roomcast.broker.redis_once.exchange_once` with the master of ``key``'s
        slot. A MOVED answer, or a failure before anything was sent, ran nothing: the
        slots are read again and it is sent once more to the new owner (an
        ``idempotent`` one, a read, also after a failure once sent). Other failures are
        the caller's (BrokerUnavailable, DeliveryUnknown, BrokerError), with the map
        marked stale."""
        for attempt in (1, 2):
            await self.ensure()
            node = self.owner_of(key)
            try:
                bound = functools.partial(_bound, exchange, node)
                return await exchange_once(self.pool(node), bound, what=what)
            except BrokerError as exc:
                self.stale()
                if attempt == 2:
                    raise
                if isinstance(exc, BrokerUnavailable) and (
                        idempotent or not isinstance(exc, DeliveryUnknown)):
                    # Nothing was sent: worth a second try if the slot has a new owner.
                    await self.ensure()
                    if self.owner_of(key) == node:
                        raise
                elif not moved(exc.__cause__ or exc):
                    raise
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()
        if self._refreshing is not None:
            self._refreshing.cancel()


async def _bound(exchange: Callable[[AbstractConnection, Node], Awaitable[T]], node: Node,
                 conn: AbstractConnection) -> T:
    return await exchange(conn, node)


def _parse_slots(raw: Any, queried: str
                 ) -> tuple[list[tuple[int, int, Node]], list[tuple[str, int]]]:
    """``CLUSTER SLOTS``: (first slot, last slot, master) by first slot, and every node."""
    owners: list[tuple[int, int, Node]] = []
    known: list[tuple[str, int]] = []
    for entry in raw or []:
        nodes = [Node(_text(n[0]) or queried, int(n[1]), _text(n[2])) for n in entry[2:]]
        owners.append((int(entry[0]), int(entry[1]), nodes[0]))
        known.extend((n.host, n.port) for n in nodes)
    owners.sort(key=lambda triple: triple[0])
    return owners, list(dict.fromkeys(known))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _watched(base: type[AbstractConnection], stale: Callable[[], None]) -> Any:
    """A connection class that marks the map stale when it fails or is MOVED."""

    class Watched(base):  # type: ignore[misc, valid-type]
        async def _connect(self) -> None:
            # The one way every connect goes (a command on a closed connection too).
            try:
                await super()._connect()
            except (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError):
                stale()
                raise

        async def read_response(self, *args: Any, **kwargs: Any) -> Any:
            try:
                response = await super().read_response(*args, **kwargs)
            except (RedisConnectionError, RedisTimeoutError, OSError):
                stale()
                raise
            except ResponseError as exc:
                if moved(exc):
                    stale()
                raise
            if isinstance(response, ResponseError) and moved(response):
                stale()  # in a pipeline's replies
            return response

    return Watched


class PinnedPool(aioredis.BlockingConnectionPool):
    """Connections to whichever master holds one slot now: a plain client on it sends
    every command there (all its keys must carry the slot's hash tag)."""

    def __init__(self, slots: SlotMap, tag: str, **options: Any) -> None:
        merged = {**slots._options, **options}
        super().__init__(connection_class=slots._connection_class, **merged)
        self._slots = slots
        self._slot = key_slot(tag.encode())
        self._target: tuple[str, int] | None = None

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        for attempt in (1, 2):
            node = await self._owner()
            self._target = (node.host, node.port)
            self.connection_kwargs.update(host=node.host, port=node.port)
            try:
                conn: AbstractConnection = await super().get_connection(  # type: ignore[no-untyped-call]
                    *args, **kwargs)
                return conn
            except (RedisConnectionError, RedisTimeoutError, OSError):
                # Nothing was sent yet: the first call after a failover finds the slot's
                # new owner instead of failing.
                if attempt == 2 or await self._owner() == node:
                    raise
        raise AssertionError("unreachable")

    async def _owner(self) -> Node:
        try:
            await self._slots.ensure()
            return self._slots.owner(self._slot)
        except BrokerUnavailable as exc:
            raise RedisConnectionError(str(exc)) from None

    async def ensure_connection(self, connection: AbstractConnection) -> None:
        target = self._target
        if target is not None and (getattr(connection, "host", None),
                                   getattr(connection, "port", None)) != target:
            # Made for the slot's former master: reconnect it to the new one.
            await connection.disconnect()
            connection.host, connection.port = target  # type: ignore[attr-defined]
        await super().ensure_connection(connection)

    async def aclose(self) -> None:
        await super().aclose()
        await self._slots.aclose()


def pinned_pool(url: str, tag: str = CONTROL_TAG, **options: Any) -> PinnedPool:
    """A pool to the master of ``tag``'s slot in the Cluster at ``url``."""
    return PinnedPool(SlotMap(url, **options), tag)
