"""RedisBroker against a real redis-server the test starts (and stops), no gateway.

The contract part also runs over MemoryBroker. Nothing here sleeps: tests wait
for the message or the health state, each wait bounded by a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from roomcast import config
from roomcast.broker.base import (
    Broker,
    ControlCommand,
    Disconnect,
    MembershipChanged,
    Target,
    ToAll,
    ToConnection,
    ToRoom,
    ToUser,
)
from roomcast.broker.memory import MemoryBroker
from roomcast.broker.redis import RedisBroker
from roomcast.exceptions import BrokerError, BrokerUnavailable, ConfigError
from roomcast.types import ConnId, GroupId, RoomId, UserId
from tests.helpers.redis_server import RedisServer

DEADLINE = 30.0  # bound of every wait; a hang fails the test instead of blocking it


class RecordingHandler:
    """A BrokerHandler that records what reaches it, in order."""

    def __init__(self) -> None:
        self.publications: asyncio.Queue[tuple[Target, dict[str, Any]]] = asyncio.Queue()
        self.controls: asyncio.Queue[ControlCommand] = asyncio.Queue()
        self.fail_next = False

    def handle_publication(self, target: Target, payload: bytes) -> int:
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("handler bug")
        self.publications.put_nowait((target, orjson.loads(payload)))
        return 1

    async def handle_control(self, command: ControlCommand) -> None:
        self.controls.put_nowait(command)

    async def next_publication(self) -> tuple[Target, dict[str, Any]]:
        async with asyncio.timeout(DEADLINE):
            return await self.publications.get()

    async def next_control(self) -> ControlCommand:
        async with asyncio.timeout(DEADLINE):
            return await self.controls.get()


def envelope(type: str = "message", **fields: Any) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "type": type, "data": {"text": "hi"},
            "timestamp": "2024-05-01T12:00:00.123Z", **fields}


def enc(env: dict[str, Any]) -> bytes:
    return orjson.dumps(env)


Node = tuple[RedisBroker, RecordingHandler]
NodeFactory = Callable[..., Awaitable[Node]]


@pytest.fixture
async def make_node(redis_server_module: RedisServer) -> AsyncIterator[NodeFactory]:
    """Start RedisBrokers (each with its own server_id and handler) on the module's server."""
    brokers: list[RedisBroker] = []

    async def make(url: str | None = None, **kwargs: Any) -> Node:
        broker = RedisBroker(url or redis_server_module.url, str(uuid.uuid4()), **kwargs)
        brokers.append(broker)
        handler = RecordingHandler()
        await broker.start(handler)
        return broker, handler

    yield make
    for broker in brokers:
        await broker.close()


async def barrier(sender: RedisBroker, *receivers: RecordingHandler) -> None:
    """Publish a marker from ``sender`` and wait until each receiver has it.

    Redis delivers in publish order to each subscriber, so whatever was
    published before the marker has been handled (or dropped) by then.
    """
    marker = envelope("system", data={"marker": str(uuid.uuid4())})
    await sender.publish(ToAll(), enc(marker))
    for receiver in receivers:
        target, env = await receiver.next_publication()
        assert (target, env) == (ToAll(), marker), "unexpected publication before the marker"


async def heard_from_another_instance(url: str, handler: RecordingHandler) -> None:
    """A new instance's publication reaches ``handler``: its subscription works."""
    other = RedisBroker(url, str(uuid.uuid4()))
    await other.start(RecordingHandler())
    try:
        await barrier(other, handler)
    finally:
        await other.close()


# -- the contract, over MemoryBroker and RedisBroker ------------------------------

BrokerFactory = Callable[[], Broker]


@pytest.fixture(params=["memory", "redis"])
def broker_factory(request: pytest.FixtureRequest) -> BrokerFactory:
    if request.param == "memory":
        return MemoryBroker
    server: RedisServer = request.getfixturevalue("redis_server_module")
    return lambda: RedisBroker(server.url, str(uuid.uuid4()))


@pytest.fixture
async def started(broker_factory: BrokerFactory) -> AsyncIterator[tuple[Broker, RecordingHandler]]:
    broker, handler = broker_factory(), RecordingHandler()
    await broker.start(handler)
    yield broker, handler
    await broker.close()


async def test_publish_delivers_locally_once(started: tuple[Broker, RecordingHandler]) -> None:
    broker, handler = started
    env = envelope(room="group:1")
    assert await broker.publish(ToRoom(RoomId("group:1")), enc(env)) == 1
    assert await handler.next_publication() == (ToRoom(RoomId("group:1")), env)
    # Our own Redis echo must not come back: a later message arrives next.
    marker = envelope("system")
    await broker.publish(ToAll(), enc(marker))
    assert await handler.next_publication() == (ToAll(), marker)
    assert handler.publications.empty()


async def test_publish_control_applies_locally_once(
    started: tuple[Broker, RecordingHandler],
) -> None:
    broker, handler = started
    command = MembershipChanged(UserId("u1"), GroupId("g1"), "Group one", True)
    await broker.publish_control(command)
    assert await handler.next_control() == command
    await broker.publish_control(Disconnect(conn_id=ConnId("c1")))
    assert await handler.next_control() == Disconnect(conn_id=ConnId("c1"))


async def test_healthy_after_start(started: tuple[Broker, RecordingHandler]) -> None:
    broker, _ = started
    assert broker.healthy
    assert broker.health_reason is None


async def test_publish_before_start_raises(broker_factory: BrokerFactory) -> None:
    broker = broker_factory()
    try:
        with pytest.raises(BrokerError):
            await broker.publish(ToAll(), enc(envelope()))
    finally:
        await broker.close()


# -- between instances ------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "env"),
    [
        (ToAll(), envelope("system_notification")),
        (ToConnection(ConnId("conn-7")), envelope(to="conn-7")),
        (ToUser(UserId("user-7")), envelope("notification", data={"user_id": "user-7"})),
        (ToRoom(RoomId("group:7")), envelope(room="group:7")),
        (ToRoom(RoomId("group:7"), exclude=ConnId("conn-1")), envelope(room="group:7")),
    ],
    ids=["all", "connection", "user", "room", "room-exclude"],
)
async def test_each_target_round_trips(
    make_node: NodeFactory, target: Target, env: dict[str, Any]
) -> None:
    a, a_seen = await make_node()
    _, b_seen = await make_node()
    assert await a.publish(target, enc(env)) == 1
    assert await a_seen.next_publication() == (target, env)
    assert await b_seen.next_publication() == (target, env)


async def test_missing_routing_fields_are_filled_in(make_node: NodeFactory) -> None:
    a, _ = await make_node()
    _, b_seen = await make_node()
    await a.publish(ToConnection(ConnId("c-9")), enc(envelope()))
    target, env = await b_seen.next_publication()
    assert (target, env["to"]) == (ToConnection(ConnId("c-9")), "c-9")
    await a.publish(ToUser(UserId("u-9")), enc(envelope(data=None)))
    target, env = await b_seen.next_publication()
    assert (target, env["data"]) == (ToUser(UserId("u-9")), {"user_id": "u-9"})


@pytest.mark.parametrize(
    ("target", "env"),
    [
        (ToConnection(ConnId("c-1")), envelope(to="c-2")),
        (ToUser(UserId("u-1")), envelope(data={"user_id": "u-2"})),
        (ToRoom(RoomId("group:1")), envelope(room="group:2")),
        (ToAll(), envelope(to="c-1")),
    ],
    ids=["connection", "user", "room", "all"],
)
async def test_envelope_naming_another_recipient_is_refused(
    make_node: NodeFactory, target: Target, env: dict[str, Any]
) -> None:
    # Other instances route by envelope fields: this would reach the wrong people there.
    a, a_seen = await make_node()
    with pytest.raises(ValueError, match=r"not the target|must not carry"):
        await a.publish(target, enc(env))
    assert a_seen.publications.empty()


async def test_control_commands_reach_other_instances(make_node: NodeFactory) -> None:
    a, a_seen = await make_node()
    b, b_seen = await make_node()
    moved = MembershipChanged(UserId("ü-1"), GroupId("g-1"), "Équipe 🚀", False)
    kick = Disconnect(user_id=UserId("u-2"), code=3500, reason="bye")
    await a.publish_control(moved)
    await a.publish_control(kick)
    assert [await b_seen.next_control(), await b_seen.next_control()] == [moved, kick]
    assert [await a_seen.next_control(), await a_seen.next_control()] == [moved, kick]
    await barrier(b, a_seen)  # a's own control echoes were dropped
    assert a_seen.controls.empty()


# -- interoperability with the Go gateway --------------------------------------------

GO_CASES: list[tuple[str, dict[str, Any], Target]] = [
    ("websocket:messages", {"type": "system_notification", "data": {"message": "hi"}}, ToAll()),
    ("websocket:messages", {"type": "message", "to": "c-1", "data": {}},
     ToConnection(ConnId("c-1"))),
    ("websocket:rooms", {"type": "message", "room": "group:5", "data": {"x": 1}},
     ToRoom(RoomId("group:5"))),
    ("websocket:users", {"type": "user_profile_update", "data": {"user_id": "u-5", "profile": {}}},
     ToUser(UserId("u-5"))),
    ("websocket:system", {"type": "backend_status", "data": {"status": "ok"}}, ToAll()),
]


@pytest.mark.parametrize("timestamp", ["2024-05-01T12:00:00.123456789Z", 1714564800123,
                                       "2024-05-01T14:00:00+02:00"])
async def test_go_payloads_reach_the_handler(
    make_node: NodeFactory, redis_server_module: RedisServer, timestamp: str | int
) -> None:
    _, seen = await make_node()
    raw = aioredis.Redis.from_url(redis_server_module.url)
    try:
        for channel, fields, expected in GO_CASES:
            message = {**fields, "id": str(uuid.uuid4()), "timestamp": timestamp}
            # Go's field order, plus a field roomcast does not know.
            payload: dict[str, Any] = {"message": message, "server_id": str(uuid.uuid4()),
                       "timestamp": timestamp, "go_only": [1, 2]}
            await raw.publish(channel, orjson.dumps(payload))
            assert await seen.next_publication() == (expected, message)
    finally:
        await raw.aclose()


MALFORMED = [
    ("websocket:messages", b"not json {"),
    ("websocket:messages", b"[1, 2, 3]"),
    ("websocket:messages", b'{"message": {"type": "message"}}'),
    ("websocket:messages", b'{"server_id": 5, "message": {"type": "message"}}'),
    ("websocket:messages", b'{"server_id": "go", "message": "secret-text"}'),
    ("websocket:messages", b'{"server_id": "go", "message": {"data": {}}}'),
    ("websocket:messages", b'{"server_id": "go", "message": {"type": "m", "to": 42}}'),
    ("websocket:rooms", b'{"server_id": "go", "message": {"type": "message"}}'),
    ("websocket:rooms", b'{"server_id": "go", "message": {"type": "message", "room": ""}}'),
    ("websocket:users", b'{"server_id": "go", "message": {"type": "m", "data": {}}}'),
    ("websocket:users", b'{"server_id": "go", "message": {"type": "m", "data": [1]}}'),
    ("roomcast:control", b'{"server_id": "x", "message": {"kind": "explode"}}'),
    ("roomcast:control", b'{"server_id": "x", "message": {"kind": ["x"]}}'),
    ("roomcast:control", b'{"server_id": "x", "message": {"kind": "disconnect", "code": "y"}}'),
    ("roomcast:control", b"\xff\xfe"),
]


async def test_malformed_payloads_are_dropped_and_logged(
    make_node: NodeFactory, redis_server_module: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    a, _ = await make_node()
    b, b_seen = await make_node()
    raw = aioredis.Redis.from_url(redis_server_module.url)
    try:
        with caplog.at_level(logging.WARNING, logger="roomcast.broker.redis"):
            for channel, data in MALFORMED:
                await raw.publish(channel, data)
            await barrier(a, b_seen)  # still delivering after all of them
    finally:
        await raw.aclose()
    assert b.dropped == len(MALFORMED)
    assert b_seen.controls.empty()
    dropped = [r for r in caplog.records if r.getMessage() == "broker_payload_dropped"]
    assert len(dropped) >= len(MALFORMED)  # a logged them too
    assert "secret-text" not in caplog.text  # reasons are logged, never contents


async def test_handler_failure_does_not_stop_delivery(make_node: NodeFactory) -> None:
    a, _ = await make_node()
    b, b_seen = await make_node()
    b_seen.fail_next = True
    await a.publish(ToAll(), enc(envelope()))  # raises inside b's handler
    await barrier(a, b_seen)
    assert b.healthy


# -- outages ----------------------------------------------------------------------


async def test_outage_then_recovery(redis_server: RedisServer) -> None:
    a, b = (RedisBroker(redis_server.url, str(uuid.uuid4()), max_backoff=0.2) for _ in "ab")
    a_seen, b_seen = RecordingHandler(), RecordingHandler()
    await a.start(a_seen)
    await b.start(b_seen)
    try:
        redis_server.stop()
        async with asyncio.timeout(DEADLINE):
            await a.wait_health(False)
        assert a.health_reason and "Redis" in a.health_reason
        assert a.channels == ()

        env = envelope(room="group:1")
        async with asyncio.timeout(DEADLINE):  # fails fast, never hangs or buffers
            with pytest.raises(BrokerUnavailable):
                await a.publish(ToRoom(RoomId("group:1")), enc(env))
            with pytest.raises(BrokerUnavailable):
                await a.publish_control(Disconnect(conn_id=ConnId("c")))
        # Local recipients got the message and the command all the same.
        assert await a_seen.next_publication() == (ToRoom(RoomId("group:1")), env)
        assert await a_seen.next_control() == Disconnect(conn_id=ConnId("c"))

        redis_server.start()  # same port
        async with asyncio.timeout(DEADLINE):
            await a.wait_health(True)
            await b.wait_health(True)
        assert a.health_reason is None
        assert "websocket:rooms" in a.channels
        await barrier(a, a_seen, b_seen)  # resubscribed: delivery resumed both ways
        await barrier(b, a_seen, b_seen)
    finally:
        await a.close()
        await b.close()


async def test_subscriber_dropped_by_redis_reconnects(
    make_node: NodeFactory, redis_server_module: RedisServer
) -> None:
    # What Redis does to a subscriber whose output buffer overflows (a burst it
    # cannot drain): it closes the connection while staying up itself.
    a, _ = await make_node(max_backoff=0.2)
    b, b_seen = await make_node(max_backoff=0.2)
    raw = aioredis.Redis.from_url(redis_server_module.url)
    try:
        assert await raw.client_kill_filter(_type="pubsub") >= 2
    finally:
        await raw.aclose()
    async with asyncio.timeout(DEADLINE):
        while True:  # at-most-once: markers sent before the resubscription are lost
            marker = envelope("system")
            await a.publish(ToAll(), enc(marker))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.2):
                    while (await b_seen.publications.get())[1] != marker:
                        pass
                    break
    assert b.reconnects >= 1
    assert b.healthy


async def test_start_with_redis_down_recovers(redis_server: RedisServer) -> None:
    redis_server.stop()
    broker = RedisBroker(redis_server.url, str(uuid.uuid4()), max_backoff=0.2)
    handler = RecordingHandler()
    await broker.start(handler)  # does not fail: the instance runs alone meanwhile
    try:
        assert not broker.healthy
        assert broker.health_reason
        redis_server.start()
        async with asyncio.timeout(DEADLINE):
            await broker.wait_health(True)
        await heard_from_another_instance(redis_server.url, handler)
    finally:
        await broker.close()
    assert not broker.healthy
    assert broker.health_reason == "closed"


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        RedisBroker("redis://127.0.0.1:1/0", "s", mode="fanout")
    with pytest.raises(ConfigError):
        RedisBroker("http://nope", "s")


@pytest.mark.parametrize("mode", ["sharded", "cluster"])
def test_a_broker_mode_without_redis_is_a_clear_error(mode: str) -> None:
    with pytest.raises(ConfigError, match=f"ROOMCAST_BROKER_MODE={mode} needs REDIS_URL"):
        config.load(environ={"ROOMCAST_BROKER_MODE": mode}, dev_secret_ok=False)
    settings = config.load(environ={"ROOMCAST_BROKER_MODE": mode, "REDIS_URL": "redis://h:1/0"},
                           dev_secret_ok=False)
    assert settings.broker_mode == mode


# -- sharded mode -------------------------------------------------------------------


async def test_sharded_rooms_reach_only_subscribed_instances(make_node: NodeFactory) -> None:
    a, _ = await make_node(mode="sharded")
    b, b_seen = await make_node(mode="sharded")
    room1, room2 = RoomId("group:1"), RoomId("group:2")
    await b.subscribe_room(room1)
    assert "roomcast:room:group:1" in b.channels
    env1, env2 = envelope(room=room1), envelope(room=room2)
    await a.publish(ToRoom(room1, exclude=ConnId("c-1")), enc(env1))
    await a.publish(ToRoom(room2), enc(env2))
    assert await b_seen.next_publication() == (ToRoom(room1, exclude=ConnId("c-1")), env1)
    await barrier(a, b_seen)  # room2 never reached b: it has no members there

    await b.unsubscribe_room(room1)
    await a.publish(ToRoom(room1), enc(env1))
    await barrier(a, b_seen)


async def test_sharded_rooms_are_resubscribed_after_outage(redis_server: RedisServer) -> None:
    a, b = (RedisBroker(redis_server.url, str(uuid.uuid4()), mode="sharded", max_backoff=0.2)
            for _ in "ab")
    a_seen, b_seen = RecordingHandler(), RecordingHandler()
    await a.start(a_seen)
    await b.start(b_seen)
    try:
        await b.subscribe_room("group:1")
        redis_server.stop()
        async with asyncio.timeout(DEADLINE):
            await b.wait_health(False)
        await b.subscribe_room("group:2")  # while down: remembered, never raises
        redis_server.start()
        async with asyncio.timeout(DEADLINE):
            await a.wait_health(True)
            await b.wait_health(True)
        for room in ("group:1", "group:2"):
            env = envelope(room=room)
            await a.publish(ToRoom(RoomId(room)), enc(env))
            assert await b_seen.next_publication() == (ToRoom(RoomId(room)), env)
    finally:
        await a.close()
        await b.close()


async def test_compat_mode_room_subscriptions_are_no_ops(make_node: NodeFactory) -> None:
    a, _ = await make_node()
    b, b_seen = await make_node()
    await b.subscribe_room("group:1")
    await b.unsubscribe_room("group:1")
    env = envelope(room="group:1")
    await a.publish(ToRoom(RoomId("group:1")), enc(env))  # every instance gets rooms
    assert await b_seen.next_publication() == (ToRoom(RoomId("group:1")), env)


# -- the listener's liveness watchdog ----------------------------------------------


async def _pings_served(url: str) -> int:
    raw = aioredis.Redis.from_url(url)
    try:
        stats = await raw.info("commandstats")
    finally:
        await raw.aclose()
    return int(stats.get("cmdstat_ping", {}).get("calls", 0))


async def test_a_quiet_subscription_is_pinged_and_stays_up(redis_server: RedisServer) -> None:
    # Nothing is published: only the watchdog's PINGs (one per silent interval) and
    # their PONGs keep the subscription alive, and they must be enough.
    broker = RedisBroker(redis_server.url, str(uuid.uuid4()), ping_interval=0.05)
    handler = RecordingHandler()
    await broker.start(handler)
    try:
        async with asyncio.timeout(DEADLINE):
            while True:  # a counter inside Redis: no event to await
                if await _pings_served(redis_server.url) >= 10:
                    break
                await asyncio.sleep(0.05)
        assert broker.healthy and broker.reconnects == 0
        await heard_from_another_instance(redis_server.url, handler)
    finally:
        await broker.close()


class SlowControls(RecordingHandler):
    """Takes its time over each control command, as a node moving many rooms does."""

    async def handle_control(self, command: ControlCommand) -> None:
        await asyncio.sleep(0.5)  # the slow work itself, not a wait for something
        await super().handle_control(command)


async def test_a_listener_busy_handling_is_not_taken_for_a_dead_redis(
    redis_server: RedisServer,
) -> None:
    # Ten times the ping interval inside one handler: the watchdog must not count it
    # as silence (a reconnection would lose what is published meanwhile).
    broker = RedisBroker(redis_server.url, str(uuid.uuid4()), ping_interval=0.05)
    handler = SlowControls()
    await broker.start(handler)
    other = RedisBroker(redis_server.url, str(uuid.uuid4()))
    await other.start(RecordingHandler())
    try:
        for n in range(3):
            await other.publish_control(Disconnect(conn_id=ConnId(f"c{n}")))
        for n in range(3):
            assert await handler.next_control() == Disconnect(conn_id=ConnId(f"c{n}"))
        assert broker.healthy and broker.reconnects == 0
        await barrier(other, handler)
    finally:
        await other.close()
        await broker.close()


@contextlib.asynccontextmanager
async def watched(url: str) -> AsyncIterator[tuple[RedisBroker, RecordingHandler]]:
    """A started broker whose watchdog pings after 0.1 s of silence and reconnects fast."""
    broker = RedisBroker(url, str(uuid.uuid4()), ping_interval=0.1, max_backoff=0.2,
                         timeout=0.5)
    handler = RecordingHandler()
    await broker.start(handler)
    try:
        yield broker, handler
    finally:
        await broker.close()


async def test_a_subscription_whose_socket_stopped_being_read_is_noticed_as_ours(
    redis_server: RedisServer,
) -> None:
    # The client side stalls, Redis does not: the watchdog reconnects all the same, and
    # its reason says the silence was ours (the socket no longer read).
    async with watched(redis_server.url) as (broker, handler):
        pubsub = broker._pubsub
        assert pubsub is not None and pubsub.connection is not None
        stream = pubsub.connection._reader
        assert stream is not None
        stream._transport.pause_reading()
        async with asyncio.timeout(DEADLINE):
            await broker.wait_health(False)
        reason = broker.health_reason or ""
        assert re.fullmatch(r"Redis subscription lost: no reply to PING \(nothing heard for "
                            r"\d+\.\d s; 0 bytes unread, reading paused\)", reason), reason
        async with asyncio.timeout(DEADLINE):
            await broker.wait_health(True)
        assert broker.reconnects == 1
        await heard_from_another_instance(redis_server.url, handler)


async def test_a_redis_that_stops_answering_is_noticed_and_rejoined(
    redis_server: RedisServer,
) -> None:
    # SIGSTOP: the TCP connection stays up, nothing comes back. Only the watchdog's
    # unanswered PING can tell.
    async with watched(redis_server.url) as (broker, handler):
        redis_server.pause()
        try:
            async with asyncio.timeout(DEADLINE):
                await broker.wait_health(False)
            reason = broker.health_reason or ""
            # How long it was silent, and (Redis's silence, not a stuck reader) nothing unread.
            assert re.fullmatch(r"Redis subscription lost: no reply to PING "
                                r"\(nothing heard for \d+\.\d s\)", reason), reason
        finally:
            redis_server.resume()
        async with asyncio.timeout(DEADLINE):
            await broker.wait_health(True)
        await heard_from_another_instance(redis_server.url, handler)
