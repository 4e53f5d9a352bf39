"""Fakes for the pure unit tests: a transport that records writes, connections on it."""

from __future__ import annotations

from roomcast.hub import LocalConnection
from roomcast.types import ConnId, UserId
from roomcast.writer import ConnectionWriter, Flusher


class FakeTransport:
    """Records each ``write`` call; its buffer size and closing state are settable."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.buffered = 0
        self.high_water: int | None = None
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.high_water = high

    def is_closing(self) -> bool:
        return self.closing


class Overflows:
    """Counts ``on_overflow`` calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


def make_writer(max_bytes: int = 1 << 20) -> tuple[ConnectionWriter, FakeTransport, Overflows]:
    transport, overflows = FakeTransport(), Overflows()
    writer = ConnectionWriter(transport, Flusher(), max_bytes=max_bytes, on_overflow=overflows)
    return writer, transport, overflows


def make_conn(conn_id: str, user_id: str, flusher: Flusher | None = None,
              *, max_bytes: int = 1 << 20) -> tuple[LocalConnection, FakeTransport]:
    transport = FakeTransport()
    writer = ConnectionWriter(transport, flusher or Flusher(), max_bytes=max_bytes)
    conn = LocalConnection(id=ConnId(conn_id), user_id=UserId(user_id), character_id=None,
                           character_name=user_id, scopes=frozenset(), created_at="",
                           writer=writer)
    return conn, transport
