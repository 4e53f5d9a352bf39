"""One command exchange with Redis that is never sent twice.

A command that failed before it was sent did not run: :class:`BrokerUnavailable`. One
that failed after (a timeout while Redis stalled, a connection lost mid-reply) may have
run, so it is not sent again by this module: :class:`DeliveryUnknown`. A caller whose
command is idempotent (keyed by a message id) may choose to resend it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from roomcast.exceptions import BrokerError, BrokerUnavailable, DeliveryUnknown

T = TypeVar("T")

#: What a lost or silent Redis raises.
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


async def exchange_once(pool: ConnectionPool, exchange: Callable[[AbstractConnection],
                                                                 Awaitable[T]],
                        *, what: str) -> T:
    """Run ``exchange`` (send a command, read its reply) on a pooled connection, once.

    Raises:
        BrokerUnavailable: no connection to Redis (nothing was sent).
        DeliveryUnknown: sent, but no reply (redis-py has dropped the connection, so a
            late reply cannot be read as the answer to another command).
        BrokerError: Redis answered with an error.
    """
    try:
        # Connects, or replaces a connection found dead: nothing is sent yet.
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]
    except UNREACHABLE as exc:
        raise BrokerUnavailable(f"Redis unreachable: {describe(exc)}") from exc
    except RedisError as exc:
        raise BrokerError(f"Redis {what} failed: {describe(exc)}") from exc
    try:
        return await exchange(conn)
    except UNREACHABLE as exc:
        raise DeliveryUnknown(f"Redis did not confirm the {what}: {describe(exc)}") from exc
    except RedisError as exc:
        raise BrokerError(f"Redis {what} failed: {describe(exc)}") from exc
    finally:
        await pool.release(conn)


def describe(exc: BaseException) -> str:
    """An error for a log line or an answer, bounded in length."""
    text = str(exc) or type(exc).__name__
    return text[:200]
