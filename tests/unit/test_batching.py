"""Concurrent lookups share one call, each made after the lookup was asked."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from roomcast.batching import Batcher, pipelined, run_script
from tests.helpers.redis_server import RedisServer


class Store:
    """A fake store whose every call is recorded and can be held open."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.value = 0
        self.release = asyncio.Event()
        self.release.set()
        self.called = asyncio.Event()

    async def fetch(self, keys: list[int]) -> list[int | BaseException]:
        self.calls.append(keys)
        self.called.set()
        seen = self.value  # read when the call is made, as a store would
        await self.release.wait()
        return [ValueError(k) if k < 0 else k * 1000 + seen for k in keys]


async def test_lookups_made_together_share_one_call() -> None:
    store = Store()
    batch = Batcher(store.fetch)
    assert await asyncio.gather(*(batch.get(k) for k in range(5))) == [0, 1000, 2000, 3000, 4000]
    assert store.calls == [[0, 1, 2, 3, 4]]


async def test_lookups_made_during_a_call_go_in_the_next_one_and_see_later_writes() -> None:
    store = Store()
    store.release.clear()
    batch = Batcher(store.fetch)
    first = asyncio.ensure_future(batch.get(1))
    await store.called.wait()
    store.value = 7  # a write that completes before the next lookup is asked
    second = asyncio.ensure_future(batch.get(2))
    await asyncio.sleep(0)
    store.release.set()
    assert await first == 1000
    assert await second == 2007  # not answered from the call already out
    assert store.calls == [[1], [2]]


async def test_a_key_error_goes_to_its_caller_alone() -> None:
    batch = Batcher(Store().fetch)
    results = await asyncio.gather(batch.get(1), batch.get(-1), return_exceptions=True)
    assert results[0] == 1000
    assert isinstance(results[1], ValueError)


async def test_a_failed_call_fails_every_caller_of_its_batch_and_the_next_one_runs() -> None:
    calls = 0

    async def fetch(keys: list[int]) -> list[int | BaseException]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("down")
        return list(keys)

    batch = Batcher(fetch)
    results = await asyncio.gather(batch.get(1), batch.get(2), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert await batch.get(3) == 3


async def test_a_cancelled_caller_does_not_hold_the_others() -> None:
    store = Store()
    store.release.clear()
    batch = Batcher(store.fetch)
    waiting = asyncio.ensure_future(batch.get(1))
    other = asyncio.ensure_future(batch.get(2))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    store.release.set()
    assert await other == 2000


async def test_batches_are_bounded() -> None:
    store = Store()
    batch = Batcher(store.fetch, max_batch=2)
    assert await asyncio.gather(*(batch.get(k) for k in range(5))) == [0, 1000, 2000, 3000, 4000]
    assert [len(c) for c in store.calls] == [2, 2, 1]


async def test_shared_keys_of_one_batch_are_fetched_once() -> None:
    store = Store()
    batch = Batcher(store.fetch, shared=True)
    results = await asyncio.gather(*(batch.get(k) for k in (3, 1, 3, -1, 3, -1)),
                                   return_exceptions=True)
    assert results[:3] == [3000, 1000, 3000] and results[4] == 3000
    assert isinstance(results[3], ValueError) and results[3] is results[5]
    assert store.calls == [[3, 1, -1]]


async def test_a_shared_key_asked_during_a_call_is_fetched_again() -> None:
    store = Store()
    store.release.clear()
    batch = Batcher(store.fetch, shared=True)
    first = asyncio.ensure_future(batch.get(1))
    await store.called.wait()
    store.value = 7  # written after the first call was sent
    second = asyncio.ensure_future(batch.get(1))
    await asyncio.sleep(0)
    store.release.set()
    assert (await first, await second) == (1000, 1007)
    assert store.calls == [[1], [1]]


async def test_without_sharing_equal_keys_are_each_fetched() -> None:
    store = Store()
    batch = Batcher(store.fetch)
    assert list(await asyncio.gather(batch.get(2), batch.get(2))) == [2000, 2000]
    assert store.calls == [[2, 2]]


@pytest.mark.redis
async def test_scripts_redis_lost_are_loaded_again_and_run_in_the_order_asked(
    redis_server: RedisServer,
) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        push = client.register_script("return redis.call('RPUSH', KEYS[1], ARGV[1])")
        batch = pipelined(client)
        await run_script(batch, push, ["order"], ["warm"])
        await client.script_flush()  # as after a Redis restart
        await client.delete("order")
        await asyncio.gather(*(run_script(batch, push, ["order"], [str(i)]) for i in range(30)))
        assert await client.lrange("order", 0, -1) == [str(i).encode() for i in range(30)]
    finally:
        await client.aclose()
