"""Commands packed by hiredis are byte for byte those redis-py packs in Python."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio.connection import (
    BlockingConnectionPool,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.exceptions import DataError

from roomcast.broker.packing import packed_class, packed_in_c
from roomcast.hub import Hub
from roomcast.registry.redis import RedisRegistry

ARG: st.SearchStrategy[Any] = (
    st.text(max_size=20)
    | st.binary(max_size=20)
    | st.integers()
    | st.floats(allow_nan=False)
    | st.binary(max_size=10).map(lambda b: memoryview(b))
)
NAME = st.sampled_from(["SET", "EVALSHA", "CONFIG GET", b"SCRIPT LOAD", b"GET"])


def _python(*args: Any) -> bytes:
    return b"".join(Connection().pack_command(*args))


def _hiredis(*args: Any) -> bytes:
    return b"".join(packed_class(Connection)().pack_command(*args))


@given(NAME, st.lists(ARG, max_size=8))
def test_hiredis_packs_what_redis_py_packs(name: str | bytes, args: list[Any]) -> None:
    assert _hiredis(name, *args) == _python(name, *args)


def test_a_pipeline_packs_the_same() -> None:
    commands = [("SET", "k", "v", "EX", 10), ("SADD", b"s", 1, 2.5), ("GET", "é")]
    fast = packed_class(Connection)()
    assert b"".join(fast.pack_commands(commands)) == b"".join(Connection().pack_commands(commands))


@pytest.mark.parametrize("bad", [True, None, object()])
def test_an_argument_redis_cannot_take_is_a_data_error(bad: object) -> None:
    with pytest.raises(DataError):
        _python("SET", "k", bad)
    with pytest.raises(DataError):
        _hiredis("SET", "k", bad)


@pytest.mark.parametrize("url", ["redis://127.0.0.1:1/0", "rediss://127.0.0.1:1/0",
                                 "unix:///tmp/nowhere.sock"])
def test_every_scheme_keeps_its_connection_kind(url: str) -> None:
    pool = packed_in_c(BlockingConnectionPool.from_url(url))
    kind = {"redis": Connection, "rediss": SSLConnection, "unix": UnixDomainSocketConnection}
    assert issubclass(pool.connection_class, kind[url.split(":")[0]])
    assert pool.connection_class is packed_class(kind[url.split(":")[0]])
    assert packed_class(pool.connection_class) is pool.connection_class


def test_the_registry_packs_in_c() -> None:
    registry = RedisRegistry("redis://127.0.0.1:1/0", Hub(), "server-1")
    pool = registry._redis.connection_pool
    assert pool.connection_class is packed_class(Connection)
