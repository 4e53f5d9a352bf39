"""Redis pub/sub between instances, wire-compatible with the Go gateway.

The wire format lives in :mod:`roomcast.broker.redis_wire`; this module owns the
connections: a pool for publishing and one subscriber connection, watched by a
listener task that reconnects with capped exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sys
import time
from typing import Final, Literal

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from roomcast import metrics
from roomcast.batching import Batcher
from roomcast.broker import redis_wire as wire
from roomcast.broker.base import BrokerHandler, ControlCommand, Target, ToRoom
from roomcast.broker.dedupe import RecentWindow
from roomcast.broker.pool import lean_pool
from roomcast.broker.redis_once import describe, exchange_once
from roomcast.exceptions import BrokerError, ConfigError
from roomcast.logs import log_event
from roomcast.supervisor import supervise

_log = logging.getLogger("roomcast.broker.redis")

Mode = Literal["compat", "sharded"]
_MODES: Final = ("compat", "sharded")
class RedisBroker:
    """A :class:`~roomcast.broker.base.Broker` over Redis pub/sub.

    Delivery to other instances is at-most-once: a message published while a
    subscriber is disconnected is lost for it (docs/protocol.md). ``publish`` delivers
    locally first, then sends the PUBLISH once and never again: when Redis is
    unreachable it raises :class:`BrokerUnavailable` within ``timeout`` seconds (a
    refused connection fails at once), and when Redis took the command but did not
    answer in time, :class:`DeliveryUnknown` (the other instances may have it). It never
    buffers. Receivers drop a second copy of a publication they delivered lately
    (same publisher and message id, see :mod:`roomcast.broker.dedupe`).

    ``start`` does not fail when Redis is down: the instance runs alone,
    ``healthy`` is False with a ``health_reason``, and the listener keeps
    reconnecting and resubscribing.

    Modes:
        ``"compat"``: every instance receives every room publication on
        ``websocket:rooms``, like the Go gateway; Go and roomcast instances
        can share a Redis.
        ``"sharded"``: room publications go to ``roomcast:room:{room}``
        channels, which an instance subscribes to only while it has local
        members. The node must call :meth:`subscribe_room` when a room gets
        its first local member and :meth:`unsubscribe_room` after the last
        one left (both are no-ops in compat mode). Go instances then miss
        roomcast's room messages, so use it only in an all-roomcast cluster.

    Args:
        url: ``redis://`` or ``rediss://`` URL.
        server_id: this instance's id; payloads carrying it are our own echoes.
        mode: ``"compat"`` or ``"sharded"``.
        timeout: bound on connecting to Redis and on each command.
        ping_interval: the listener pings an idle subscription this often and
            reconnects when nothing came back for two intervals.
        max_backoff: cap of the listener's reconnection delay.
    """

    alone = False

    def __init__(
        self,
        url: str,
        server_id: str,
        *,
        mode: str = "compat",
        timeout: float = 1.0,
        ping_interval: float = 5.0,
        max_backoff: float = 5.0,
        max_connections: int = 64,
    ) -> None:
        if mode not in _MODES:
            raise ConfigError(f"broker mode must be 'compat' or 'sharded', not {mode!r}")
        self.url = url
        self.server_id = server_id
        self.mode: Mode = "sharded" if mode == "sharded" else "compat"
        self._timeout = timeout
        self._ping_interval = ping_interval
        self._max_backoff = max_backoff
        self._prefix = wire.payload_prefix(server_id)
        try:
            # A blocking pool bounds concurrent publishes: the excess waits at
            # most `timeout` for a connection instead of queueing without end.
            pool = lean_pool(
                url,
                max_connections=max_connections,
                timeout=timeout,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                # No retry: a PUBLISH that timed out may have gone through (Redis
                # stalled, not down), and sending it again delivered it twice. A
                # connection a Redis restart left stale is replaced when it is taken
                # from the pool (redis-py checks it), before anything is sent.
                retry=Retry(NoBackoff(), retries=0),
            )
            # The subscriber has its own connection, never waits behind
            # publishers, and never reconnects behind our back: the listener
            # owns reconnection, so every loss shows in `healthy` and the logs.
            sub_pool = aioredis.ConnectionPool.from_url(
                url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), retries=0),
            )
        except ValueError as exc:
            raise ConfigError(f"invalid REDIS_URL: {exc}") from None
        self._client = aioredis.Redis.from_pool(pool)
        self._publishes: Batcher[tuple[str, bytes], int] = Batcher(self._publish_many)
        self._subscriber = aioredis.Redis.from_pool(sub_pool)
        self._handler: BrokerHandler | None = None
        self._pubsub: PubSub | None = None
        self._rooms: set[str] = set()
        self._listener: asyncio.Task[None] | None = None
        self._closing = False
        self._healthy = False
        self._reason: str | None = "not started"
        self._health_changed = asyncio.Event()
        #: Payloads received from other instances but dropped as malformed.
        self.dropped = 0
        #: Subscriptions re-established after a loss (the messages in between are lost).
        self.reconnects = 0
        #: Publications received a second time and dropped.
        self.duplicates = 0
        self._recent = RecentWindow()
        #: Replies read by the listener (messages, PONGs), and whether it is waiting
        #: for the next one (not busy handling the last): its liveness.
        self._heard = 0
        self._waiting = False

    # -- health -----------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        """Whether the subscription to the other instances is live."""
        return self._healthy

    @property
    def health_reason(self) -> str | None:
        """Why the broker is unhealthy, if it is."""
        return self._reason

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels subscribed to right now (empty while disconnected)."""
        if self._pubsub is None:
            return ()
        return (*wire.CHANNELS, *sorted(map(wire.room_channel, self._rooms)))

    def _set_health(self, healthy: bool, reason: str | None = None) -> None:
        if healthy != self._healthy:
            quiet = healthy or reason == "closed"
            log_event(_log, "broker_healthy" if healthy else "broker_unhealthy",
                      logging.INFO if quiet else logging.WARNING, reason=reason)
        self._healthy, self._reason = healthy, None if healthy else reason
        self._health_changed.set()
        self._health_changed = asyncio.Event()

    async def wait_health(self, healthy: bool = True) -> None:
        """Return once ``healthy`` has that value (bound it with ``asyncio.timeout``)."""
        while self._healthy != healthy:
            await self._health_changed.wait()

    # -- lifecycle ------------------------------------------------------------------

    async def start(self, handler: BrokerHandler) -> None:
        """Subscribe (or, with Redis down, keep trying in the background)."""
        if self._listener is not None:
            return
        self._handler = handler
        listener = supervise("broker-listener", self._listen)
        self._listener = listener
        # Wait for the first attempt, so a healthy start delivers from the first message.
        first_attempt = asyncio.create_task(self._health_changed.wait())
        await asyncio.wait({first_attempt, listener}, return_when=asyncio.FIRST_COMPLETED)
        first_attempt.cancel()

    async def close(self) -> None:
        """Stop listening and close every connection."""
        self._closing = True
        task, self._listener = self._listener, None
        # redis-py's read timeout can swallow a cancellation that lands as it
        # expires (asyncio.timeout on 3.11), so cancel until the task is done.
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.1)
        self._handler = None
        self._set_health(False, "closed")
        await self._client.aclose()
        await self._subscriber.aclose()

    # -- publishing -------------------------------------------------------------

    async def publish(self, target: Target, payload: bytes) -> int:
        """Deliver locally, then publish to the other instances; local recipients.

        Raises:
            ValueError: the payload's envelope names a recipient other than
                ``target`` (checked before anything is delivered).
            BrokerUnavailable: Redis is unreachable (local delivery happened).
            BrokerError: Redis refused the publish (local delivery happened).
        """
        handler = self._require_handler()
        channel, envelope = wire.outgoing(target, payload, sharded=self.mode == "sharded")
        exclude = target.exclude if isinstance(target, ToRoom) else None
        local = handler.handle_publication(target, payload)
        await self._publish(channel, wire.wrap(self._prefix, envelope, exclude))
        return local

    async def publish_control(self, command: ControlCommand) -> None:
        """Apply a command here, then send it to the other instances.

        Raises:
            BrokerUnavailable: Redis is unreachable (applied locally only).
        """
        await self._require_handler().handle_control(command)
        await self._publish(wire.CONTROL, wire.encode_control(self._prefix, command))

    async def _publish(self, channel: str, data: bytes) -> None:
        """Send one PUBLISH, once: what fails after it was sent is never retried.

        Publishes asked while one exchange is out go together in the next (in the order
        asked): a round trip costs an instance ~10x a command in one, and a connect
        storm publishes a presence change per connection.
        """
        await self._publishes.get((channel, data))

    async def _publish_many(self, items: list[tuple[str, bytes]]) -> list[int | BaseException]:
        async def publish(conn: AbstractConnection) -> list[int | BaseException]:
            await conn.send_packed_command(
                conn.pack_commands([("PUBLISH", channel, data) for channel, data in items])
            )
            replies: list[int | BaseException] = []
            for _ in items:  # every reply is read, so the connection stays in step
                try:
                    replies.append(await conn.read_response())
                except ResponseError as exc:
                    replies.append(BrokerError(f"Redis publish failed: {describe(exc)}"))
            return replies

        return await exchange_once(self._client.connection_pool, publish, what="publish")

    def _require_handler(self) -> BrokerHandler:
        if self._handler is None:
            raise BrokerError("broker not started")
        return self._handler

    # -- sharded rooms ----------------------------------------------------------

    async def subscribe_room(self, room: str) -> None:
        """Receive the room's publications (sharded mode; a no-op in compat mode).

        Never raises: while Redis is down the room is subscribed on reconnection.
        """
        if self.mode != "sharded" or room in self._rooms:
            return
        self._rooms.add(room)
        await self._change_subscription("subscribe", room)

    async def unsubscribe_room(self, room: str) -> None:
        """Stop receiving the room's publications (sharded mode; a no-op otherwise)."""
        if self.mode != "sharded" or room not in self._rooms:
            return
        self._rooms.discard(room)
        await self._change_subscription("unsubscribe", room)

    async def _change_subscription(self, action: str, room: str) -> None:
        pubsub = self._pubsub
        if pubsub is None:
            return  # the listener subscribes to self._rooms when it connects
        try:
            await getattr(pubsub, action)(wire.room_channel(room))
        except (RedisError, OSError) as exc:
            # The listener sees the same failure and resubscribes from self._rooms.
            log_event(_log, "broker_room_subscription_failed", logging.WARNING,
                      action=action, room=room, error=describe(exc))

    # -- listening --------------------------------------------------------------

    async def _listen(self) -> None:
        delay = 0.0
        subscribed_before = False
        while not self._closing:
            pubsub = self._subscriber.pubsub()
            try:
                await pubsub.subscribe(*wire.CHANNELS, *map(wire.room_channel, self._rooms))
                self._pubsub = pubsub
                if subscribed_before:
                    self.reconnects += 1
                subscribed_before = True
                self._set_health(True)
                delay = 0.0
                await self._receive(pubsub)
            except (RedisError, OSError) as exc:
                self._set_health(False, f"Redis subscription lost: {describe(exc)}")
            except Exception as exc:
                # Not Redis's fault, but delivery has stopped all the same: start over.
                log_event(_log, "broker_listener_failed", logging.ERROR, error=describe(exc))
                self._set_health(False, f"listener failed: {describe(exc)}")
            finally:
                self._pubsub = None
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            # Capped exponential backoff with jitter, so instances do not
            # reconnect in lockstep after a Redis restart.
            delay = min(self._max_backoff, max(0.05, delay * 2))
            await asyncio.sleep(delay * random.uniform(0.8, 1.0))

    async def _receive(self, pubsub: PubSub) -> None:
        """Read until the subscription fails; watch its liveness once per ping interval.

        The reader blocks on the socket with no timeout (a timeout per read costs a
        timer armed and cancelled for every message, a tenth of a busy receiver's
        time); this watchdog wakes once per interval instead: after an interval in
        which the reader waited and nothing arrived it sends a PING, and after two it
        gives up. A reader busy handling what it read is not silence: it reads the
        PONG when it is done.
        """
        reader = asyncio.create_task(self._read(pubsub))
        loop = asyncio.get_running_loop()
        try:
            quiet = 0
            silent_since = loop.time()
            while True:
                heard = self._heard
                started = loop.time()
                done, _ = await asyncio.wait({reader}, timeout=self._ping_interval)
                if done:
                    return reader.result()
                if loop.time() - started > 1.5 * self._ping_interval:
                    # The event loop itself was held up (a huge fan-out, a slow host):
                    # a reply may be waiting unread, so this interval proves nothing.
                    continue
                if self._heard != heard or not self._waiting:
                    quiet = 0
                    continue
                if quiet == 0:
                    silent_since = started
                quiet += 1
                if quiet >= 2:
                    raise RedisConnectionError(
                        f"no reply to PING (nothing heard for {loop.time() - silent_since:.1f} s"
                        f"{_unread(pubsub)})")
                await pubsub.ping()
        finally:
            reader.cancel()
            await asyncio.wait({reader})
            if not reader.cancelled():
                reader.exception()  # retrieved: it is the one raised above, or none

    async def _read(self, pubsub: PubSub) -> None:
        while not self._closing:
            self._waiting = True
            message = await pubsub.get_message(timeout=None)
            self._waiting = False
            self._heard += 1
            if message is not None and message["type"] == "message":
                await self._dispatch(message["channel"].decode(), message["data"])

    async def _dispatch(self, channel: str, data: bytes) -> None:
        if data.startswith(self._prefix):
            return  # our own echo
        handler = self._handler
        if handler is None:
            return
        try:
            if channel == wire.CONTROL:
                server_id, command = wire.parse_control(data)
                if server_id != self.server_id:
                    await handler.handle_control(command)
                return
            incoming = wire.parse(channel, data)
            if incoming.server_id == self.server_id:
                return
            # Channel and publisher are few and repeat: interned, a window entry costs
            # about its id alone (65,536 entries: some 16 MB at most).
            key = (sys.intern(channel), sys.intern(incoming.server_id), incoming.message_id)
            if incoming.message_id is not None and self._recent.seen(key, time.monotonic()):
                self.duplicates += 1
                metrics.BROKER_DUPLICATES.inc()
                return
            handler.handle_publication(incoming.target, incoming.envelope)
        except wire.MalformedPayload as exc:
            self.dropped += 1
            # The reason and size only: payloads may carry private messages.
            log_event(_log, "broker_payload_dropped", logging.WARNING,
                      channel=channel, size=len(data), reason=str(exc))
        except Exception as exc:
            # A handler bug must not stop delivery of everything after it.
            log_event(_log, "broker_handler_failed", logging.ERROR, channel=channel,
                      error=describe(exc))


def _unread(pubsub: PubSub) -> str:
    """What the subscription's socket delivered that its reader has not parsed, if any.

    A silence with bytes waiting here is ours (a reader that stopped), not Redis's.
    """
    stream = getattr(pubsub.connection, "_reader", None)
    buffered = len(getattr(stream, "_buffer", b""))
    transport = getattr(stream, "_transport", None)
    paused = transport is not None and not transport.is_reading()
    if not buffered and not paused:
        return ""
    return f"; {buffered} bytes unread{', reading paused' if paused else ''}"
