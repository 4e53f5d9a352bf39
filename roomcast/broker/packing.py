"""Redis connections whose commands hiredis packs, in C.

redis-py's asyncio connections encode every argument of every command in Python
(an ``isinstance`` chain and three joins per argument); its synchronous ones hand the
whole command to hiredis when it is installed. In a connect storm that packing was
the largest single cost of an instance's Redis traffic (the registry's flush script
alone carries a dozen arguments per connection). :func:`packed_in_c` gives a pool's
connections redis-py's own hiredis serializer: the same bytes on the wire, the same
``DataError`` for an argument Redis cannot take.

They also send without a task: redis-py bounds every send by ``socket_timeout`` with
``asyncio.wait_for``, a task and a timer per command, though a socket takes a command
at once unless its buffer is full. Here the command is written first, and only a
transport left holding bytes is drained under that bound, as redis-py drains it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.connection import HiredisRespSerializer
from redis.utils import HIREDIS_AVAILABLE

_Pool = TypeVar("_Pool", bound=ConnectionPool)
_SERIALIZER = HiredisRespSerializer()
_CLASSES: dict[type[AbstractConnection], type[AbstractConnection]] = {}


class _PackedInC:
    """Mixin: ``pack_command`` by hiredis (``pack_commands`` builds on it), and
    ``send_packed_command`` without a task when the socket takes the command."""

    def pack_command(self, *args: Any) -> list[bytes]:
        packed: list[bytes] = _SERIALIZER.pack(*args)
        return packed

    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        conn: Any = self
        writer = conn._writer
        if (writer is None or conn._reader is None or conn.health_check_interval
                or isinstance(command, (bytes, str)) or writer.transport.is_closing()):
            # Connecting, health checks, a lost transport: redis-py's own path.
            await super().send_packed_command(command, check_health)  # type: ignore[misc]
            return
        try:
            writer.writelines(command)
        except BaseException:
            await conn.disconnect(nowait=True)
            raise
        if writer.transport.get_write_buffer_size():
            # What the socket did not take is drained as redis-py drains it: within
            # socket_timeout, the connection dropped if that fails.
            await super().send_packed_command([], check_health=False)  # type: ignore[misc]


def packed_class(base: type[AbstractConnection]) -> type[AbstractConnection]:
    """``base`` with commands packed by hiredis (``base`` itself without hiredis)."""
    if not HIREDIS_AVAILABLE or issubclass(base, _PackedInC):
        return base
    cls = _CLASSES.get(base)
    if cls is None:
        cls = _CLASSES[base] = type(base.__name__, (_PackedInC, base), {})
    return cls


def packed_in_c(pool: _Pool) -> _Pool:
    """``pool``, its new connections packing commands by hiredis (TCP, TLS or Unix)."""
    pool.connection_class = packed_class(pool.connection_class)
    return pool
