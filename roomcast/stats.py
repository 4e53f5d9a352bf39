"""Per-instance figures over the last 15 minutes, for the admin dashboard's live charts.

Every instance samples itself once a second: open connections, publications made
through it per second (client and API sends, events) and frames queued to its
connections per second; summed over instances, both rates are the cluster's. Without Redis the
series stay in memory; with Redis each sample is also appended to
``roomcast:stats:{server_id}`` (a list trimmed to the window, expiring with the
instance), so any instance can show every instance's charts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from roomcast.broker.slots import CONTROL_TAG, pinned_pool
from roomcast.logs import log_event
from roomcast.supervisor import supervise

_log = logging.getLogger("roomcast.stats")

KEY_PREFIX = "roomcast:stats:"
INSTANCES = "roomcast:stats:instances"
#: Seconds of history kept (the charts' width) at one sample per ``INTERVAL``.
WINDOW = 900
INTERVAL = 1.0


@dataclass(frozen=True, slots=True)
class Counters:
    """What an instance has counted since it started."""

    connections: int
    messages: int
    deliveries: int


#: A sample on the wire: [unix seconds, connections, messages/s, deliveries/s].
Sample = list[float]


class StatsSampler:
    """Samples this instance every ``interval`` and serves every instance's series.

    Args:
        server_id: this instance.
        read: the counters now.
        redis_url: share samples with the other instances (None: this one only).
    """

    def __init__(
        self,
        server_id: str,
        read: Callable[[], Counters],
        *,
        redis_url: str | None = None,
        interval: float = INTERVAL,
        window: int = WINDOW,
        cluster: bool = False,
    ) -> None:
        self.server_id = server_id
        self._read = read
        self.interval = interval
        self._window = window
        self._series: deque[Sample] = deque(maxlen=window)
        self._last: tuple[float, Counters] | None = None
        self._redis: aioredis.Redis | None = None
        # On a Redis Cluster the keys carry one hash tag (one slot, one master).
        self._tag = CONTROL_TAG if cluster else ""
        if redis_url and cluster:
            self._redis = aioredis.Redis.from_pool(pinned_pool(
                redis_url, socket_timeout=2.0, socket_connect_timeout=2.0))
        elif redis_url:
            self._redis = aioredis.Redis.from_url(
                redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._task: asyncio.Task[None] | None = None
        self._ticked = asyncio.Event()

    async def start(self) -> None:
        self._task = supervise("stats-sampler", self._run)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._redis is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._redis.zrem(self._tag + INSTANCES, self.server_id)
            await self._redis.aclose()

    async def wait_tick(self) -> None:
        """Return after the next sample was taken (and shared)."""
        await self._ticked.wait()

    def sample(self) -> Sample:
        """Take one sample: rates since the previous one."""
        now, counters = time.time(), self._read()
        if self._last is None:
            messages = deliveries = 0.0
        else:
            then, before = self._last
            elapsed = max(now - then, 1e-6)
            messages = max(0, counters.messages - before.messages) / elapsed
            deliveries = max(0, counters.deliveries - before.deliveries) / elapsed
        self._last = (now, counters)
        sample = [round(now, 3), counters.connections, round(messages, 2), round(deliveries, 2)]
        self._series.append(sample)
        return sample

    async def _run(self) -> None:
        while True:
            sample = self.sample()
            if self._redis is not None:
                try:
                    await self._share(sample)
                except (RedisError, OSError) as exc:
                    log_event(_log, "stats_share_failed", logging.WARNING, error=str(exc))
            self._ticked.set()
            self._ticked = asyncio.Event()
            await asyncio.sleep(self.interval)

    async def _share(self, sample: Sample) -> None:
        assert self._redis is not None
        key = self._tag + KEY_PREFIX + self.server_id
        pipe = self._redis.pipeline(transaction=False)
        pipe.rpush(key, orjson.dumps(sample))
        pipe.ltrim(key, -self._window, -1)
        pipe.expire(key, int(self._window * self.interval) + 60)
        pipe.zadd(self._tag + INSTANCES, {self.server_id: sample[0]})
        await pipe.execute()

    async def _live_instances(self) -> list[str]:
        """Instances that sampled within the last few intervals (a dead one drops out)."""
        assert self._redis is not None
        since = time.time() - max(5.0, 5 * self.interval)
        await self._redis.zremrangebyscore(self._tag + INSTANCES, "-inf", since - 3600)
        found = await self._redis.zrangebyscore(self._tag + INSTANCES, since, "+inf")
        names = {x.decode() if isinstance(x, bytes) else str(x) for x in found}
        return sorted(names | {self.server_id})

    async def series(self) -> dict[str, list[Sample]]:
        """Every live instance's samples of the window, oldest first."""
        if self._redis is None:
            return {self.server_id: list(self._series)}
        try:
            servers = await self._live_instances()
            pipe = self._redis.pipeline(transaction=False)
            for server in servers:
                pipe.lrange(self._tag + KEY_PREFIX + server, 0, -1)
            lists = await pipe.execute()
        except (RedisError, OSError):
            return {self.server_id: list(self._series)}
        out = {
            s: [orjson.loads(raw) for raw in raws]
            for s, raws in zip(servers, lists, strict=True)
        }
        out[self.server_id] = list(self._series)
        return out

    async def latest(self) -> dict[str, Sample]:
        """Every live instance's last sample."""
        own = {self.server_id: self._series[-1]} if self._series else {}
        if self._redis is None:
            return own
        try:
            servers = [s for s in await self._live_instances() if s != self.server_id]
            pipe = self._redis.pipeline(transaction=False)
            for server in servers:
                pipe.lindex(self._tag + KEY_PREFIX + server, -1)
            raws = await pipe.execute()
        except (RedisError, OSError):
            return own
        out = {s: orjson.loads(raw) for s, raw in zip(servers, raws, strict=True) if raw}
        return {**out, **own}
