"""Commands sent without a task: a full socket is still bounded, and never left half-used."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import TimeoutError as RedisTimeoutError

from roomcast.broker.pool import LeanPool, lean_pool
from tests.helpers.redis_server import RedisServer

pytestmark = pytest.mark.redis

#: Past what the loopback's socket buffers hold, so the transport keeps the rest.
LARGE = 32 << 20


@pytest.fixture
async def pool(redis_server: RedisServer) -> AsyncIterator[LeanPool]:
    pool = lean_pool(redis_server.url, max_connections=2, timeout=5.0, socket_timeout=0.5,
                     socket_connect_timeout=5.0)
    yield pool
    await pool.disconnect()


@contextlib.contextmanager
def stalled(redis_server: RedisServer) -> Iterator[None]:
    """Redis stopped (SIGSTOP) for the block: its sockets take bytes until they are full."""
    redis_server.pause()
    try:
        yield
    finally:
        redis_server.resume()


@contextlib.asynccontextmanager
async def connected(pool: LeanPool) -> AsyncIterator[AbstractConnection]:
    """A connection of ``pool`` that answered a PING (connected on redis-py's path)."""
    conn = await pool.get_connection()
    try:
        await conn.send_command("PING")
        assert await conn.read_response() == b"PONG"
        yield conn
    finally:
        await pool.release(conn)


async def test_a_command_the_socket_takes_is_sent_without_wait_for(
    pool: LeanPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with connected(pool) as conn:
        calls: list[Any] = []
        real = asyncio.wait_for

        async def counted(aw: Any, timeout: float | None) -> Any:
            calls.append(aw)
            return await real(aw, timeout)

        monkeypatch.setattr(asyncio, "wait_for", counted)
        for n in range(3):
            await conn.send_packed_command(conn.pack_command("SET", f"k{n}", n))
            assert await conn.read_response() == b"OK"
        assert calls == []


async def test_a_command_redis_does_not_take_in_time_drops_the_connection(
    pool: LeanPool, redis_server: RedisServer
) -> None:
    async with connected(pool) as conn:
        with stalled(redis_server):
            with pytest.raises(RedisTimeoutError, match="Timeout writing to socket"):
                await conn.send_packed_command(conn.pack_command("SET", "big", b"x" * LARGE))
            # Part of the command is out (and may still run): never used again.
            assert not conn.is_connected
    async with connected(pool):
        pass  # the pool connects anew


async def test_a_send_cancelled_while_draining_drops_the_connection(
    pool: LeanPool, redis_server: RedisServer
) -> None:
    async with connected(pool) as conn:
        with stalled(redis_server):
            send = asyncio.create_task(
                conn.send_packed_command(conn.pack_command("SET", "big", b"x" * LARGE)))
            await asyncio.sleep(0)  # one turn: the send writes, then waits for room
            assert not send.done()
            writer = conn._writer
            assert writer is not None and writer.transport.get_write_buffer_size() > 0
            send.cancel()
            with pytest.raises(asyncio.CancelledError):
                await send
            assert not conn.is_connected
