"""One lock per key: holders of a key take turns, other keys never wait, nothing stays."""

from __future__ import annotations

import asyncio

import pytest

from roomcast.keylock import KeyedLock


async def test_holders_of_one_key_take_turns_and_other_keys_do_not_wait() -> None:
    locks: KeyedLock[str] = KeyedLock()
    order: list[str] = []
    inside = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with locks.hold("u1"):
            order.append("first in")
            inside.set()
            await release.wait()
            order.append("first out")

    async def second() -> None:
        async with locks.hold("u1"):
            order.append("second in")

    one = asyncio.ensure_future(first())
    await inside.wait()
    two = asyncio.ensure_future(second())
    async with locks.hold("u2"):  # another key: no wait
        order.append("other key")
    assert len(locks) == 1
    release.set()
    await asyncio.gather(one, two)
    assert order == ["first in", "other key", "first out", "second in"]
    assert len(locks) == 0


async def test_a_cancelled_waiter_and_a_failing_holder_leave_nothing_behind() -> None:
    locks: KeyedLock[str] = KeyedLock()
    async with locks.hold("u"):
        waiter = asyncio.ensure_future(locks.hold("u").__aenter__())
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    assert len(locks) == 0
    with pytest.raises(RuntimeError):
        async with locks.hold("u"):
            raise RuntimeError("inside")
    assert len(locks) == 0
    async with locks.hold("u"):  # still usable
        pass
