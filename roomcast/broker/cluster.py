"""Pub/sub between instances over a Redis Cluster: sharded channels (SSUBSCRIBE/SPUBLISH).

A room's channel lives on the master of the room's slot (the slot of its history keys),
the other channels on one master of their own (see
:func:`~roomcast.broker.redis_wire.shard_channel`). The listener holds one subscriber
connection per master that has channels we want. When any of them fails, or the
Cluster takes a subscribed slot away (an unasked ``sunsubscribe``: a failover or a
resharding), the listener reads the slots again and subscribes everything anew on the
new owners; what was published in between is lost to it, as in any broker outage
(rooms with history repair the gap from their stream). Publishing sends one SPUBLISH to
the channel's master, once (a MOVED answer ran nothing and is sent to the new owner).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from roomcast.broker import redis_wire as wire
from roomcast.broker.redis import RedisBroker
from roomcast.broker.redis_once import describe
from roomcast.broker.slots import Node, SlotMap
from roomcast.exceptions import BrokerError
from roomcast.logs import log_event

_log = logging.getLogger("roomcast.broker.cluster")


@dataclass(slots=True)
class _Shard:
    """The subscription on one master."""

    node: Node
    client: aioredis.Redis
    pubsub: PubSub
    channels: set[str] = field(default_factory=set)
    reader: asyncio.Task[None] | None = None
    heard: int = 0
    #: ``heard`` at the last check of the watchdog.
    checked: int = 0
    waiting: bool = False
    quiet: int = 0


class ClusterBroker(RedisBroker):
    """A :class:`~roomcast.broker.redis.RedisBroker` (sharded mode) on a Redis Cluster.

    Same contract: at-most-once to the other instances, never sent twice, healthy only
    while every wanted channel is subscribed.

    Args:
        url: a ``redis://`` or ``rediss://`` URL of any node of the Cluster.
    """

    def __init__(self, url: str, server_id: str, *, timeout: float = 1.0,
                 ping_interval: float = 5.0, max_backoff: float = 5.0,
                 max_connections: int = 64) -> None:
        super().__init__(url, server_id, mode="sharded", timeout=timeout,
                         ping_interval=ping_interval, max_backoff=max_backoff,
                         max_connections=max_connections)
        self._slots = SlotMap(url, max_connections=max_connections, timeout=timeout,
                              socket_timeout=timeout, socket_connect_timeout=timeout,
                              retry=Retry(NoBackoff(), retries=0))
        self._shards: dict[Node, _Shard] = {}
        self._failure: asyncio.Future[None] | None = None
        self._changing = asyncio.Lock()

    @property
    def channels(self) -> tuple[str, ...]:
        """The sharded channels subscribed to right now (empty while disconnected)."""
        if self._failure is None or not self._healthy:
            return ()
        return tuple(sorted(c for shard in self._shards.values() for c in shard.channels))

    @property
    def slot_changes(self) -> int:
        """Times the Cluster's slots were found moved (failovers, reshardings)."""
        return self._slots.changes

    async def close(self) -> None:
        await super().close()
        await self._slots.aclose()

    # -- publishing -------------------------------------------------------------

    async def _publish(self, channel: str, data: bytes) -> None:
        shard = wire.shard_channel(channel)

        async def spublish(conn: AbstractConnection, _node: Node) -> None:
            await conn.send_command("SPUBLISH", shard, data)
            await conn.read_response()

        await self._slots.exchange(shard, spublish, what="publish")

    # -- subscriptions ----------------------------------------------------------

    def _wanted(self) -> set[str]:
        # Not the compat room channel: nobody publishes there in cluster mode.
        return {wire.shard_channel(c) for c in
                (*wire.CHANNELS, *map(wire.room_channel, self._rooms)) if c != wire.ROOMS}

    async def _change_subscription(self, action: str, room: str) -> None:
        failure = self._failure
        if failure is None or failure.done() or not self._healthy:
            return  # the listener subscribes to self._rooms when it connects
        channel = wire.shard_channel(wire.room_channel(room))
        try:
            async with self._changing:
                node = self._slots.owner_of(channel)
                shard = self._shards.get(node)
                if action == "subscribe":
                    if shard is None:
                        await self._open(node, [channel])
                    else:
                        shard.channels.add(channel)
                        await shard.pubsub.ssubscribe(channel)
                elif shard is not None and channel in shard.channels:
                    shard.channels.discard(channel)
                    await shard.pubsub.sunsubscribe(channel)
        except (RedisError, OSError, BrokerError) as exc:
            log_event(_log, "broker_room_subscription_failed", logging.WARNING,
                      action=action, room=room, error=describe(exc))
            self._fail(exc)

    async def _open(self, node: Node, channels: list[str]) -> None:
        client = self._slots.client(node, socket_timeout=self._timeout,
                                    socket_connect_timeout=self._timeout,
                                    retry=Retry(NoBackoff(), retries=0))
        pubsub = client.pubsub()
        shard = _Shard(node, client, pubsub, set(channels))
        self._shards[node] = shard
        by_slot: dict[int, list[str]] = {}
        for channel in channels:
            by_slot.setdefault(key_slot(channel.encode()), []).append(channel)
        for same_slot in by_slot.values():  # SSUBSCRIBE takes the channels of one slot
            await pubsub.ssubscribe(*same_slot)
        # Not spawn(): a shard's failure is no bug to log but the listener's to handle.
        shard.reader = asyncio.create_task(self._read_shard(shard), name="broker-shard-reader")
        shard.reader.add_done_callback(self._reader_done)

    def _reader_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        self._fail(exc or RedisConnectionError("subscription ended"))

    def _fail(self, exc: BaseException) -> None:
        failure = self._failure
        if failure is not None and not failure.done():
            failure.set_exception(exc)

    async def _read_shard(self, shard: _Shard) -> None:
        while not self._closing:
            shard.waiting = True
            message = await shard.pubsub.get_message(timeout=None)
            shard.waiting = False
            shard.heard += 1
            if message is None:
                continue
            kind = message["type"]
            if kind == "smessage":
                channel = message["channel"].decode()
                await self._dispatch(wire.unshard_channel(channel), message["data"])
            elif kind == "sunsubscribe":
                channel = message["channel"].decode()
                if channel in shard.channels:
                    # Not ours to drop: the Cluster moved the slot (failover, resharding).
                    raise RedisConnectionError(f"Redis Cluster moved {channel!r}")

    # -- listening --------------------------------------------------------------

    async def _listen(self) -> None:
        delay = 0.0
        subscribed_before = False
        loop = asyncio.get_running_loop()
        while not self._closing:
            failure: asyncio.Future[None] = loop.create_future()
            self._failure = failure
            try:
                async with self._changing:
                    await self._slots.ensure()
                    by_node: dict[Node, list[str]] = {}
                    for channel in sorted(self._wanted()):
                        by_node.setdefault(self._slots.owner_of(channel), []).append(channel)
                    for node, channels in by_node.items():
                        await self._open(node, channels)
                if subscribed_before:
                    self.reconnects += 1
                subscribed_before = True
                self._set_health(True)
                delay = 0.0
                await self._watch(failure)
            except (RedisError, OSError, BrokerError) as exc:
                self._slots.stale()
                self._set_health(False, f"Redis subscription lost: {describe(exc)}")
            except Exception as exc:
                log_event(_log, "broker_listener_failed", logging.ERROR, error=describe(exc))
                self._set_health(False, f"listener failed: {describe(exc)}")
            finally:
                if not failure.done():
                    failure.cancel()
                await self._close_shards()
            delay = min(self._max_backoff, max(0.05, delay * 2))
            await asyncio.sleep(delay * random.uniform(0.8, 1.0))

    async def _watch(self, failure: asyncio.Future[None]) -> None:
        """Wait for a shard's failure; ping a quiet shard once per interval and give up
        on one silent for two (as the single-Redis listener does)."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.wait({failure}, timeout=self._ping_interval)
            if failure.done():
                failure.result()
                return
            if loop.time() - started > 1.5 * self._ping_interval:
                continue  # the event loop was held up: this interval proves nothing
            for node, shard in list(self._shards.items()):
                heard, shard.checked = shard.checked, shard.heard  # before the PING
                if shard.heard != heard or not shard.waiting:
                    shard.quiet = 0
                    continue
                shard.quiet += 1
                if shard.quiet >= 2:
                    raise RedisConnectionError(f"no reply to PING from {node.host}:{node.port}")
                await shard.pubsub.ping()

    async def _close_shards(self) -> None:
        shards, self._shards = list(self._shards.values()), {}
        for shard in shards:
            if shard.reader is not None:
                shard.reader.remove_done_callback(self._reader_done)
                while not shard.reader.done():
                    shard.reader.cancel()
                    await asyncio.wait({shard.reader}, timeout=0.1)
                if not shard.reader.cancelled():
                    shard.reader.exception()
            with contextlib.suppress(RedisError, OSError):
                await shard.pubsub.aclose()  # type: ignore[no-untyped-call]
            with contextlib.suppress(RedisError, OSError):
                await shard.client.aclose()
