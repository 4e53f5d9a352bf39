"""Coalescing of concurrent lookups: those made while one call is out share the next.

A connect storm makes every handshake ask the same stores the same kind of question
(its denials, its groups, a room's stream top). One round trip (or one hop to the
SQLite thread) per batch instead of per handshake is most of what a handshake costs
beyond the bare upgrade. A lookup's call is always sent after the lookup was made,
so it sees every write that completed before it, as a call of its own would: nothing
is cached.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from redis.asyncio.client import Pipeline, Redis
from redis.exceptions import NoScriptError

_K = TypeVar("_K")
_V = TypeVar("_V")


class Batcher(Generic[_K, _V]):
    """Runs ``fetch`` for the keys asked meanwhile, one call at a time.

    ``fetch`` answers one value per key, in order; a value that is an exception is
    raised to that key's caller alone. An exception of ``fetch`` goes to every caller
    of the batch. With ``shared``, equal keys of one batch are fetched once and their
    callers get the same value (for answers that do not depend on who asks, such as
    a room's stream top during a join storm into that room).
    """

    def __init__(self, fetch: Callable[[list[_K]], Awaitable[list[_V | BaseException]]],
                 *, max_batch: int = 256, shared: bool = False) -> None:
        self._fetch = fetch
        self._max = max_batch
        self._shared = shared
        self._queue: list[tuple[_K, asyncio.Future[_V]]] = []
        self._task: asyncio.Task[None] | None = None

    async def get(self, key: _K) -> _V:
        future: asyncio.Future[_V] = asyncio.get_running_loop().create_future()
        self._queue.append((key, future))
        if self._task is None:
            # Runs from the next loop turn: every lookup made in this one joins it.
            self._task = asyncio.get_running_loop().create_task(self._run())
        return await future

    async def _run(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self._max], self._queue[self._max :]
                batch = [(k, f) for k, f in batch if not f.done()]  # cancelled callers
                if batch:
                    await self._one(batch)
        finally:
            self._task = None
            for _, future in self._queue:  # only when cancelled (the loop is closing)
                future.cancel()
            self._queue = []

    async def _one(self, batch: list[tuple[_K, asyncio.Future[_V]]]) -> None:
        keys = [k for k, _ in batch]
        if self._shared:
            unique = list(dict.fromkeys(keys))
            if len(unique) < len(keys):
                await self._one_shared(batch, unique)
                return
        try:
            values = await self._fetch(keys)
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except BaseException as exc:  # handed to every caller
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), value in zip(batch, values, strict=True):
            if future.done():
                continue
            if isinstance(value, BaseException):
                future.set_exception(value)
            else:
                future.set_result(value)

    async def _one_shared(self, batch: list[tuple[_K, asyncio.Future[_V]]],
                          unique: list[_K]) -> None:
        futures: dict[_K, list[asyncio.Future[_V]]] = {}
        for key, future in batch:
            futures.setdefault(key, []).append(future)
        loop = asyncio.get_running_loop()
        shared: list[tuple[_K, asyncio.Future[_V]]] = []
        for key in unique:
            one: asyncio.Future[_V] = loop.create_future()
            one.add_done_callback(functools.partial(_copy, futures=futures[key]))
            shared.append((key, one))
        await self._one(shared)


def _copy(done: asyncio.Future[_V], futures: list[asyncio.Future[_V]]) -> None:
    """Hand one shared outcome to every caller that asked for it."""
    for future in futures:
        if future.done():
            continue
        if done.cancelled():
            future.cancel()
        elif (exc := done.exception()) is not None:
            future.set_exception(exc)
        else:
            future.set_result(done.result())


#: Adds one command to a pipeline (e.g. ``lambda p: p.mget(keys)``).
Command = Callable[[Pipeline], Any]


def pipelined(redis: Redis, *, max_batch: int = 256) -> Batcher[Command, Any]:
    """A batcher sending the commands asked meanwhile as one pipeline (no transaction).

    A command's error goes to its caller alone; a connection error to every caller.
    """
    return Batcher(functools.partial(execute, redis), max_batch=max_batch)


async def execute(redis: Redis, commands: list[Command]) -> list[Any]:
    """``commands`` in one pipeline (no transaction); a command's error is its result."""
    pipe = redis.pipeline(transaction=False)
    for command in commands:
        command(pipe)
    results: list[Any] = await pipe.execute(raise_on_error=False)
    return results


async def run_script(batch: Batcher[Command, Any], script: Any, keys: list[Any],
                     args: list[Any]) -> Any:
    """A registered script by its SHA through ``batch``; loaded again when Redis lost it.

    The load goes through ``batch`` too, so the calls of one batch are sent again in
    the order they were asked (sent one by one they could overtake each other: a
    connection's presence removal before its addition).
    """
    try:
        return await batch.get(lambda p: p.evalsha(script.sha, len(keys), *keys, *args))
    except NoScriptError:
        await batch.get(lambda p: p.script_load(script.script))
        return await batch.get(lambda p: p.evalsha(script.sha, len(keys), *keys, *args))
