"""Redis connections whose commands hiredis packs, in C.

redis-py's asyncio connections encode every argument of every command in Python
(an ``isinstance`` chain and three joins per argument); its synchronous ones hand the
whole command to hiredis when it is installed. In a connect storm that packing was
the largest single cost of an instance's Redis traffic (the registry's flush script
alone carries a dozen arguments per connection). :func:`packed_in_c` gives a pool's
connections redis-py's own hiredis serializer: the same bytes on the wire, the same
``DataError`` for an argument Redis cannot take.
"""

from __future__ import annotations

from typing import Any, TypeVar

from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.connection import HiredisRespSerializer
from redis.utils import HIREDIS_AVAILABLE

_Pool = TypeVar("_Pool", bound=ConnectionPool)
_SERIALIZER = HiredisRespSerializer()
_CLASSES: dict[type[AbstractConnection], type[AbstractConnection]] = {}


class _PackedInC:
    """Mixin: ``pack_command`` by hiredis (``pack_commands`` builds on it)."""

    def pack_command(self, *args: Any) -> list[bytes]:
        packed: list[bytes] = _SERIALIZER.pack(*args)
        return packed


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
