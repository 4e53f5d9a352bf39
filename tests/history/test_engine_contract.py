"""Every history engine keeps the same contract: offsets, epochs, retention, reads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest

from roomcast.history.base import Retention, is_complete
from roomcast.types import RoomId
from tests.helpers.redis_server import RedisServer
from tests.history.engines import Harness, MemoryHarness, RedisHarness

ROOM = RoomId("group:contract")
KEEP = Retention(size=5, ttl=60.0, meta_ttl=600.0)


@pytest.fixture(params=["memory", "redis"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    if request.param == "memory":
        memory = MemoryHarness()
        yield memory
        await memory.engine.close()
        return
    server: RedisServer = request.getfixturevalue("redis_server_module")
    made = RedisHarness(server)
    await made.raw.flushall()
    yield made
    await made.close()


def short(h: Harness) -> Retention:
    """A retention whose TTLs the harness can wait out (Redis expires in real time)."""
    if isinstance(h, RedisHarness):
        return Retention(size=5, ttl=0.3, meta_ttl=0.9)
    return KEEP


def envelope(n: int) -> bytes:
    return orjson.dumps({"id": f"m{n}", "type": "message", "room": ROOM, "data": {"n": n}})


async def fill(h: Harness, count: int, retention: Retention = KEEP) -> None:
    for n in range(1, count + 1):
        await h.engine.append(ROOM, envelope(n), retention, message_id=f"m{n}")


async def test_offsets_start_at_one_and_grow_by_one(harness: Harness) -> None:
    first = await harness.engine.append(ROOM, envelope(1), KEEP)
    second = await harness.engine.append(ROOM, envelope(2), KEEP)
    assert (first.position.offset, second.position.offset) == (1, 2)
    assert first.position.epoch == second.position.epoch
    assert await harness.engine.top(ROOM, KEEP) == second.position


async def test_stored_envelope_carries_offset_and_epoch(harness: Harness) -> None:
    appended = await harness.engine.append(ROOM, envelope(1), KEEP)
    stored = orjson.loads(appended.payload)
    assert stored == {"id": "m1", "type": "message", "room": ROOM, "data": {"n": 1},
                      "offset": 1, "epoch": appended.position.epoch}
    read = await harness.engine.read(ROOM, KEEP, limit=10)
    assert [p.payload for p in read.publications] == [appended.payload]


async def test_empty_room_has_an_epoch_that_its_first_publication_keeps(
    harness: Harness,
) -> None:
    empty = await harness.engine.top(ROOM, KEEP)
    assert empty.offset == 0
    appended = await harness.engine.append(ROOM, envelope(1), KEEP)
    assert appended.position.epoch == empty.epoch


async def test_rooms_are_independent(harness: Harness) -> None:
    other = RoomId("user:someone")
    await fill(harness, 3)
    appended = await harness.engine.append(other, envelope(1), KEEP)
    assert appended.position.offset == 1
    assert (await harness.engine.read(other, KEEP, limit=10)).publications[0].offset == 1


async def test_read_since_in_order_and_reverse(harness: Harness) -> None:
    await fill(harness, 4)
    forward = await harness.engine.read(ROOM, KEEP, since=1, limit=10)
    assert [p.offset for p in forward.publications] == [2, 3, 4]
    assert forward.top.offset == 4
    assert is_complete(forward.publications, 1, 4)
    limited = await harness.engine.read(ROOM, KEEP, since=0, limit=2)
    assert [p.offset for p in limited.publications] == [1, 2]
    newest = await harness.engine.read(ROOM, KEEP, limit=2, reverse=True)
    assert [p.offset for p in newest.publications] == [4, 3]
    assert [orjson.loads(p.payload)["data"]["n"] for p in newest.publications] == [4, 3]


async def test_trimmed_to_size(harness: Harness) -> None:
    await fill(harness, 8)
    read = await harness.engine.read(ROOM, KEEP, limit=100)
    assert [p.offset for p in read.publications] == [4, 5, 6, 7, 8]
    assert read.top.offset == 8
    assert not is_complete((await harness.engine.read(ROOM, KEEP, since=2, limit=100))
                           .publications, 2, 8)


async def test_same_message_id_is_stored_once(harness: Harness) -> None:
    first = await harness.engine.append(ROOM, envelope(1), KEEP, message_id="once")
    again = await harness.engine.append(ROOM, envelope(1), KEEP, message_id="once")
    assert again.new is False and first.new is True
    assert again.position == first.position
    assert again.payload == first.payload
    assert (await harness.engine.top(ROOM, KEEP)).offset == 1


async def test_data_expires_but_epoch_and_top_stay(harness: Harness) -> None:
    keep = short(harness)
    await fill(harness, 3, keep)
    before = await harness.engine.top(ROOM, keep)
    await harness.expire_data(ROOM)
    read = await harness.engine.read(ROOM, keep, since=1, limit=10)
    assert read.publications == []
    assert read.top == before
    after = await harness.engine.append(ROOM, envelope(4), keep)
    assert after.position.epoch == before.epoch and after.position.offset == 4


async def test_epoch_changes_when_meta_expires(harness: Harness) -> None:
    keep = short(harness)
    await fill(harness, 3, keep)
    before = await harness.engine.top(ROOM, keep)
    await harness.expire_all(ROOM)
    after = await harness.engine.top(ROOM, keep)
    assert after.epoch != before.epoch and after.offset == 0
    appended = await harness.engine.append(ROOM, envelope(9), keep)
    assert appended.position == type(after)(after.epoch, 1)


async def test_epoch_changes_when_the_backend_loses_its_data(harness: Harness) -> None:
    await fill(harness, 3)
    before = await harness.engine.top(ROOM, KEEP)
    await harness.lose_everything()
    appended = await harness.engine.append(ROOM, envelope(4), KEEP)
    assert appended.position.epoch != before.epoch
    assert appended.position.offset == 1
    read = await harness.engine.read(ROOM, KEEP, limit=10)
    assert [p.offset for p in read.publications] == [1]


async def test_redis_restart_without_persistence_changes_the_epoch(
    redis_server: RedisServer,
) -> None:
    harness = RedisHarness(redis_server)
    try:
        await fill(harness, 2)
        before = await harness.engine.top(ROOM, KEEP)
        redis_server.stop()
        redis_server.start()
        appended = await harness.engine.append(ROOM, envelope(3), KEEP)
        assert appended.position.epoch != before.epoch and appended.position.offset == 1
    finally:
        await harness.close()


async def test_redis_keys_share_one_hash_slot_and_appends_publish(
    redis_server_module: RedisServer,
) -> None:
    """One room = one Cluster slot; the append publishes its stored envelope in the
    same script, between the route's head and tail."""
    from roomcast.history.base import Route
    from roomcast.history.redis import RedisHistory, keys

    tags = {k[k.index("{"):k.index("}") + 1] for k in keys("group:a}b")}
    assert len(tags) == 1
    raw = RedisHarness(redis_server_module).raw
    engine = RedisHistory(redis_server_module.url)
    pubsub = raw.pubsub()
    try:
        await pubsub.subscribe("contract-channel")
        appended = await engine.append(ROOM, envelope(1), KEEP, message_id="p1",
                                       route=Route("contract-channel", b"<", b">"))
        again = await engine.append(ROOM, envelope(1), KEEP, message_id="p1",
                                    route=Route("contract-channel", b"<", b">"))
        assert again.new is False
        got: list[bytes] = []
        async with asyncio.timeout(20):
            while len(got) < 1:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                if message is not None:
                    got.append(message["data"])
        assert got == [b"<" + appended.payload + b">"]
        # The retried append was not published again: a marker published after it is next.
        await raw.publish("contract-channel", b"marker")
        async with asyncio.timeout(20):
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                if message is not None:
                    assert message["data"] == b"marker"
                    break
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await engine.close()
        await raw.aclose()
