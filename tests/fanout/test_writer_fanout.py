"""Encode once, frame once, coalesce without reordering, bound every queue."""

from __future__ import annotations

import asyncio

import pytest

from roomcast.broker.base import ToAll, ToRoom
from roomcast.hub import Hub, LocalConnection
from roomcast.protocol import messages
from roomcast.protocol.frames import text_frame
from roomcast.types import ConnId, RoomId, UserId
from roomcast.writer import ConnectionWriter, Flusher


class FakeTransport:
    """Records every write; can pretend the kernel stopped taking data."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.buffered = 0
        self.high_water: int | None = None

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.high_water = high

    def is_closing(self) -> bool:
        return False


def make_conn(n: int, flusher: Flusher, *, max_bytes: int = 1 << 20,
              overflows: list[str] | None = None) -> tuple[LocalConnection, FakeTransport]:
    transport = FakeTransport()
    conn_id = ConnId(f"c{n}")
    writer = ConnectionWriter(
        transport, flusher, max_bytes=max_bytes,
        on_overflow=(lambda: overflows.append(conn_id)) if overflows is not None else None,
    )
    conn = LocalConnection(id=conn_id, user_id=UserId(f"u{n}"), character_id=n,
                           character_name=f"user {n}", scopes=frozenset(), created_at="",
                           writer=writer)
    return conn, transport


async def flushed() -> None:
    """Let the flusher's call_soon run (one loop iteration)."""
    await asyncio.sleep(0)


async def test_every_recipient_gets_the_identical_bytes_object() -> None:
    hub, flusher = Hub(), Flusher()
    room = RoomId("group:all")
    transports = []
    for n in range(100):
        conn, transport = make_conn(n, flusher)
        hub.add(conn)
        hub.join(conn, room, "all")
        transports.append(transport)
    payload = messages.encode(messages.envelope("message", {"text": "hi"}, room=room))
    assert hub.deliver(ToRoom(room), payload) == 100
    await flushed()
    first = transports[0].writes[0]
    assert first == text_frame(payload)
    assert all(len(t.writes) == 1 and t.writes[0] is first for t in transports)


async def test_a_burst_is_coalesced_into_two_writes_in_order() -> None:
    """The first frame goes out at once; the other 49 wait for one coalesced write."""
    hub, flusher = Hub(), Flusher()
    conn, transport = make_conn(1, flusher)
    hub.add(conn)
    payloads = [messages.encode({"type": "message", "data": {"n": i}}) for i in range(50)]
    for payload in payloads:
        hub.deliver(ToAll(), payload)
    assert transport.writes == [text_frame(payloads[0])]
    await flushed()
    assert len(transport.writes) == 2
    assert b"".join(transport.writes) == b"".join(text_frame(p) for p in payloads)


async def test_writes_across_iterations_keep_order() -> None:
    flusher = Flusher()
    conn, transport = make_conn(1, flusher)
    sent = []
    for batch in range(5):
        for i in range(batch + 1):
            frame = text_frame(f'{{"b":{batch},"i":{i}}}'.encode())
            sent.append(frame)
            conn.writer.enqueue(frame)
        await flushed()
    assert b"".join(transport.writes) == b"".join(sent)
    assert len(transport.writes) == 5


@pytest.mark.parametrize("max_bytes", [1024, 64 * 1024])
async def test_queue_limit_is_enforced_in_bytes(max_bytes: int) -> None:
    flusher = Flusher()
    overflows: list[str] = []
    conn, transport = make_conn(1, flusher, max_bytes=max_bytes, overflows=overflows)
    frame = text_frame(b"x" * 200)
    accepted = 0
    while conn.writer.enqueue(frame):
        accepted += 1
    assert accepted == max_bytes // len(frame)
    assert overflows == ["c1"]
    assert not conn.writer.enqueue(frame)  # closed: nothing more is queued
    assert overflows == ["c1"]  # reported once
    await flushed()
    assert transport.writes == []


async def test_a_full_transport_buffer_counts_against_the_limit() -> None:
    hub, flusher = Hub(), Flusher()
    overflows: list[str] = []
    slow, slow_transport = make_conn(1, flusher, max_bytes=10_000, overflows=overflows)
    fast, fast_transport = make_conn(2, flusher, max_bytes=10_000, overflows=overflows)
    for conn in (slow, fast):
        hub.add(conn)
    slow_transport.buffered = 9_950  # the kernel stopped taking this client's data
    hub.deliver(ToAll(), b'{"type":"message","data":{}}' + b" " * 100)
    await flushed()
    assert overflows == ["c1"]
    assert slow_transport.writes == []
    assert len(fast_transport.writes) == 1
