"""ConnectionWriter, Flusher and fan_out on a fake transport: coalescing, order, byte limits.

Tests are async because ``enqueue`` schedules the flush on the running loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from roomcast.writer import FAST_MIN, ConnectionWriter, Flusher, RoomWriters, fan_out, fan_out_room
from tests.unit.fakes import FakeTransport, Overflows, make_writer


async def one_iteration() -> None:
    """Let call_soon callbacks (the flusher) run: one pass of the event loop."""
    await asyncio.sleep(0)


async def test_queued_frames_are_written_in_one_call_in_order() -> None:
    writer, transport, _ = make_writer()
    frames = [f"frame-{i};".encode() for i in range(20)]
    for frame in frames:
        assert writer.enqueue(frame)
    assert transport.writes == []  # enqueue never writes
    await one_iteration()
    assert transport.writes == [b"".join(frames)]
    assert writer.pending == [] and writer.pending_bytes == 0


async def test_a_single_frame_is_written_as_is() -> None:
    writer, transport, _ = make_writer()
    frame = b"only"
    writer.enqueue(frame)
    await one_iteration()
    assert len(transport.writes) == 1 and transport.writes[0] is frame


async def test_order_is_kept_across_flushes() -> None:
    writer, transport, _ = make_writer()
    expected = b""
    for batch in range(4):
        for i in range(3):
            frame = f"{batch}.{i};".encode()
            expected += frame
            writer.enqueue(frame)
        await one_iteration()
    assert len(transport.writes) == 4
    assert b"".join(transport.writes) == expected


async def test_one_flusher_flushes_every_writer_once_per_iteration() -> None:
    flusher = Flusher()
    transports = [FakeTransport() for _ in range(3)]
    writers = [ConnectionWriter(t, flusher, max_bytes=1000) for t in transports]
    for _ in range(5):
        for w in writers:
            w.enqueue(b"x")
    await one_iteration()
    assert [t.writes for t in transports] == [[b"xxxxx"]] * 3


async def test_the_byte_limit_is_exact() -> None:
    writer, _, overflows = make_writer(max_bytes=10)
    assert writer.enqueue(b"12345")
    assert writer.enqueue(b"67890")  # exactly at the limit: still fine
    assert overflows.calls == 0 and writer.pending_bytes == 10
    assert not writer.enqueue(b"!")  # one byte over
    assert overflows.calls == 1
    assert writer.closed and writer.pending == [] and writer.pending_bytes == 0


async def test_overflow_is_reported_once_and_nothing_is_written() -> None:
    writer, transport, overflows = make_writer(max_bytes=100)
    results = [writer.enqueue(b"x" * 30) for _ in range(10)]
    assert results == [True] * 3 + [False] * 7
    assert overflows.calls == 1
    await one_iteration()
    assert transport.writes == []


async def test_the_transport_buffer_counts_against_the_limit() -> None:
    writer, transport, overflows = make_writer(max_bytes=100)
    writer.enqueue(b"x" * 30)
    transport.buffered = 71  # the kernel stopped taking this client's data
    writer.flush()
    assert overflows.calls == 1 and writer.closed
    assert transport.writes == []


async def test_within_the_limit_with_a_buffer_still_writes() -> None:
    writer, transport, overflows = make_writer(max_bytes=100)
    writer.enqueue(b"x" * 30)
    transport.buffered = 70
    writer.flush()
    assert overflows.calls == 0 and transport.writes == [b"x" * 30]


async def test_a_closing_transport_drops_the_queue() -> None:
    writer, transport, overflows = make_writer()
    writer.enqueue(b"late")
    transport.closing = True
    writer.flush()
    assert transport.writes == [] and writer.pending_bytes == 0
    assert overflows.calls == 0


async def test_close_with_flush_writes_what_was_queued() -> None:
    writer, transport, _ = make_writer()
    writer.enqueue(b"a")
    writer.enqueue(b"b")
    writer.close(flush=True)
    assert transport.writes == [b"ab"]
    assert not writer.enqueue(b"c")
    writer.flush()
    assert transport.writes == [b"ab"]


async def test_close_without_flush_drops_the_queue() -> None:
    writer, transport, overflows = make_writer()
    writer.enqueue(b"a")
    writer.close(flush=False)
    writer.close(flush=True)  # idempotent: nothing left to write
    await one_iteration()
    assert transport.writes == [] and overflows.calls == 0
    assert not writer.enqueue(b"b")


def test_without_an_overflow_callback_overflow_just_closes() -> None:
    writer = ConnectionWriter(FakeTransport(), Flusher(), max_bytes=1)
    assert not writer.enqueue(b"xx")
    assert writer.closed


# -- fan_out: the direct write to an idle connection -------------------------------


class StuckTransport(FakeTransport):
    """A client that reads nothing: every byte written stays in the buffer."""

    def write(self, data: bytes) -> None:
        super().write(data)
        self.buffered += len(data)


class BrokenTransport(FakeTransport):
    def write(self, data: bytes) -> None:
        raise RuntimeError("unable to perform operation on a closed handler")


async def test_an_idle_writer_writes_at_once_and_queues_the_rest_of_the_iteration() -> None:
    writer, transport, _ = make_writer()
    member = writer
    assert fan_out([member], b"1") == 1
    assert transport.writes == [b"1"]  # written during the call, before any loop pass
    assert fan_out([member], b"2") == 1
    assert fan_out([member], b"3") == 1
    assert transport.writes == [b"1"]  # a pass is pending: queued
    await one_iteration()
    assert transport.writes == [b"1", b"23"]
    assert fan_out([member], b"4") == 1  # idle again after the pass
    assert transport.writes == [b"1", b"23", b"4"]


async def test_one_message_at_a_time_is_one_write_of_the_same_bytes_each() -> None:
    flusher = Flusher()
    transports = [FakeTransport() for _ in range(3)]
    members = [ConnectionWriter(t, flusher, max_bytes=1000) for t in transports]
    frames = [f"frame-{i}".encode() for i in range(5)]
    for frame in frames:
        assert fan_out(members, frame) == 3
        await one_iteration()
    for t in transports:
        assert len(t.writes) == 5
        assert all(w is f for w, f in zip(t.writes, frames, strict=True))


async def test_a_queued_frame_is_never_overtaken_by_a_direct_write() -> None:
    writer, transport, _ = make_writer()
    writer.enqueue(b"reply;")  # e.g. a command's reply, queued in this iteration
    assert fan_out([writer], b"broadcast;") == 1
    assert transport.writes == []
    await one_iteration()
    assert transport.writes == [b"reply;broadcast;"]


async def test_direct_writes_stop_at_the_byte_limit_of_a_consumer_that_reads_nothing() -> None:
    transport, overflows = StuckTransport(), Overflows()
    writer = ConnectionWriter(transport, Flusher(), max_bytes=1000, on_overflow=overflows)
    member = writer
    results = []
    for _ in range(12):
        results.append(fan_out([member], b"x" * 100))
        await one_iteration()
    assert results == [1] * 10 + [0, 0]
    assert transport.buffered == 1000  # never above the limit
    assert overflows.calls == 1 and writer.closed


async def test_a_transport_that_raises_fails_its_writer_and_nobody_else() -> None:
    flusher, overflows = Flusher(), Overflows()
    broken = ConnectionWriter(BrokenTransport(), flusher, max_bytes=1000, on_overflow=overflows)
    healthy_transport = FakeTransport()
    healthy = ConnectionWriter(healthy_transport, flusher, max_bytes=1000)
    assert fan_out([broken, healthy], b"frame") == 1
    assert healthy_transport.writes == [b"frame"]
    assert broken.closed and overflows.calls == 1
    await one_iteration()
    assert fan_out([broken, healthy], b"next") == 1


# -- fan_out to a room: the bare loop while no pass is pending ----------------------
#
# A room's messages go through fan_out_room (the hub's path, one RoomWriters kept
# across messages) or fan_out (a list of writers, as for the liveness pings): both
# must keep the same promises.

Send = Callable[[bytes], int]


@pytest.fixture(params=["fan_out", "fan_out_room"])
def sender(request: pytest.FixtureRequest) -> Callable[[list[ConnectionWriter]], Send]:
    """How a room's members get a frame: ``sender(members)(frame)`` -> count."""

    def make(members: list[ConnectionWriter]) -> Send:
        if request.param == "fan_out":
            return lambda frame: fan_out(members, frame)
        kept = RoomWriters(members)
        return lambda frame: fan_out_room(kept, frame)

    return make


def room(n: int = FAST_MIN,
         max_bytes: int = 1000) -> tuple[list[ConnectionWriter], list[FakeTransport]]:
    flusher = Flusher()
    transports = [FakeTransport() for _ in range(n)]
    return [ConnectionWriter(t, flusher, max_bytes=max_bytes) for t in transports], transports


async def test_a_room_gets_one_write_per_message_one_at_a_time(
    sender: Callable[[list[ConnectionWriter]], Send],
) -> None:
    members, transports = room()
    send = sender(members)
    frames = [f"frame-{i}".encode() for i in range(5)]
    for frame in frames:
        assert send(frame) == len(members)
        assert all(t.writes[-1] is frame for t in transports)  # during the call
        await one_iteration()
    assert all(len(t.writes) == 5 for t in transports)


async def test_a_burst_to_a_room_costs_two_writes_per_connection_in_order(
    sender: Callable[[list[ConnectionWriter]], Send],
) -> None:
    members, transports = room()
    send = sender(members)
    frames = [f"{i};".encode() for i in range(30)]
    for frame in frames:
        assert send(frame) == len(members)
    await one_iteration()
    for t in transports:
        assert t.writes == [frames[0], b"".join(frames[1:])]


async def test_a_room_fan_out_then_a_single_write_in_the_same_iteration_is_queued(
    sender: Callable[[list[ConnectionWriter]], Send],
) -> None:
    members, transports = room()
    assert sender(members)(b"room;") == len(members)
    assert fan_out(members[:1], b"direct;") == 1
    assert members[0].write(b"again;")
    assert transports[0].writes == [b"room;"]
    await one_iteration()
    assert transports[0].writes == [b"room;", b"direct;again;"]
    assert all(t.writes == [b"room;"] for t in transports[1:])


async def test_a_queued_frame_is_never_overtaken_by_a_room_fan_out(
    sender: Callable[[list[ConnectionWriter]], Send],
) -> None:
    members, transports = room()
    assert members[3].enqueue(b"reply;")
    assert sender(members)(b"room;") == len(members)
    assert transports[3].writes == []
    await one_iteration()
    assert transports[3].writes == [b"reply;room;"]
    assert transports[0].writes == [b"room;"]


async def test_a_room_fan_out_stops_at_the_byte_limit_of_a_consumer_that_reads_nothing(
    sender: Callable[[list[ConnectionWriter]], Send],
) -> None:
    flusher, overflows = Flusher(), Overflows()
    stuck = StuckTransport()
    others = [FakeTransport() for _ in range(FAST_MIN)]
    members = [ConnectionWriter(stuck, flusher, max_bytes=1000, on_overflow=overflows)]
    members += [ConnectionWriter(t, flusher, max_bytes=1000) for t in others]
    send = sender(members)
    results = []
    for _ in range(25):
        results.append(send(b"x" * 100))
        await one_iteration()
    assert results == [len(members)] * 10 + [len(members) - 1] * 15
    assert stuck.buffered == 1000  # never above the limit
    assert overflows.calls == 1 and members[0].closed
    assert all(len(t.writes) == 25 for t in others)


async def test_a_room_fan_out_skips_closed_writers_and_survives_a_broken_transport(
    sender: Callable[[list[ConnectionWriter]], Send],
) -> None:
    members, transports = room()
    members[0].close(flush=False)
    broken = ConnectionWriter(BrokenTransport(), members[1]._flusher, max_bytes=1000)
    members[1] = broken
    send = sender(members)
    assert send(b"frame") == len(members) - 2
    assert transports[0].writes == [] and broken.closed
    assert all(t.writes == [b"frame"] for t in transports[2:])
    await one_iteration()
    assert send(b"next") == len(members) - 2
    assert all(t.writes == [b"frame", b"next"] for t in transports[2:])


async def test_a_writer_closed_after_the_room_was_listed_gets_nothing_more() -> None:
    members, transports = room()
    kept = RoomWriters(members)
    assert fan_out_room(kept, b"one") == len(members)
    await one_iteration()
    members[2].close(flush=False)  # e.g. kicked: not yet out of the room
    assert fan_out_room(kept, b"two") == len(members) - 1
    assert transports[2].writes == [b"one"]
    assert all(t.writes == [b"one", b"two"] for i, t in enumerate(transports) if i != 2)


async def test_a_room_member_with_a_larger_limit_is_measured_against_its_own() -> None:
    flusher = Flusher()
    transports = [FakeTransport() for _ in range(FAST_MIN)]
    members = [ConnectionWriter(t, flusher, max_bytes=1000) for t in transports]
    roomy, overflows = FakeTransport(), Overflows()
    roomy.buffered = 1500  # over the room's smallest limit, within its own
    members.append(ConnectionWriter(roomy, flusher, max_bytes=2000, on_overflow=overflows))
    kept = RoomWriters(members)
    assert fan_out_room(kept, b"x" * 100) == len(members)
    assert roomy.writes == [b"x" * 100] and overflows.calls == 0
    await one_iteration()
    roomy.buffered = 1950  # now over its own limit too
    assert fan_out_room(kept, b"y" * 100) == len(members) - 1
    assert roomy.writes == [b"x" * 100] and overflows.calls == 1
    assert all(t.writes == [b"x" * 100, b"y" * 100] for t in transports)


# -- fan_out to a room whose transports signal a full buffer --------------------------


class SignallingTransport(StuckTransport):
    """Reads nothing, and tells its writer when a write takes it past its high-water
    mark, once, as an event loop's transport calls its protocol's ``pause_writing``;
    counts how often it is measured."""

    def __init__(self) -> None:
        super().__init__()
        self.measures = 0
        self.paused = False
        self.on_full: Callable[[], None] | None = None

    def get_write_buffer_size(self) -> int:
        self.measures += 1
        return super().get_write_buffer_size()

    def write(self, data: bytes) -> None:
        super().write(data)
        if self.high_water is not None and self.buffered > self.high_water and not self.paused:
            self.paused = True
            if self.on_full is not None:
                self.on_full()


def signalled_room(n: int = FAST_MIN + 1, max_bytes: int = 1000
                   ) -> tuple[list[ConnectionWriter], list[SignallingTransport], Overflows]:
    flusher, overflows = Flusher(), Overflows()
    transports = [SignallingTransport() for _ in range(n)]
    members = []
    for t in transports:
        writer = ConnectionWriter(t, flusher, max_bytes=max_bytes, on_overflow=overflows)
        t.on_full = writer.transport_full
        writer.signal_when_full()
        members.append(writer)
    return members, transports, overflows


async def test_a_signalled_room_is_written_without_measuring_any_transport() -> None:
    members, transports, _ = signalled_room()
    assert all(w.signalled for w in members)
    assert all(t.high_water == 1000 for t in transports)
    for t in transports:
        t.measures = 0
        t.buffered = 0  # the kernel takes everything in this test
    kept = RoomWriters(members)
    for i in range(5):
        t_before = [len(t.writes) for t in transports]
        assert fan_out_room(kept, f"m{i}".encode()) == len(members)
        assert [len(t.writes) for t in transports] == [b + 1 for b in t_before]
        for t in transports:
            t.buffered = 0
        await one_iteration()
    assert sum(t.measures for t in transports) == 0


async def test_a_signalled_member_is_closed_by_its_transport_once_past_the_limit() -> None:
    members, transports, overflows = signalled_room()
    for t in transports[1:]:
        t.on_full = None  # only the first is a consumer that reads nothing
        t.high_water = None
    kept = RoomWriters(members)
    results = []
    for _ in range(25):
        results.append(fan_out_room(kept, b"x" * 100))
        await one_iteration()
    # The 11th frame takes its buffer to 1,100: written, then the writer is closed.
    assert results == [len(members)] * 10 + [len(members) - 1] * 15
    assert transports[0].buffered == 1100 and len(transports[0].writes) == 11
    assert overflows.calls == 1 and members[0].closed
    assert all(len(t.writes) == 25 for t in transports[1:])


async def test_a_transport_with_bytes_in_its_buffer_is_not_signalled_but_measured() -> None:
    flusher, overflows = Flusher(), Overflows()
    transports = [SignallingTransport() for _ in range(FAST_MIN)]
    members = [ConnectionWriter(t, flusher, max_bytes=1000) for t in transports]
    busy = SignallingTransport()
    busy.buffered = 950  # maybe paused already: it might never signal
    writer = ConnectionWriter(busy, flusher, max_bytes=1000, on_overflow=overflows)
    writer.signal_when_full()
    assert not writer.signalled and busy.high_water is None
    for w in members:
        w.signal_when_full()
    kept = RoomWriters([*members, writer])
    assert fan_out_room(kept, b"y" * 100) == FAST_MIN  # measured: 1,050 is over
    assert busy.writes == [] and overflows.calls == 1


@pytest.mark.parametrize("n", [4, FAST_MIN + 1], ids=["per writer", "large fan-out"])
async def test_fan_out_to_a_writer_its_transport_closes_mid_write_counts_it_out(n: int) -> None:
    members, transports, overflows = signalled_room(n)
    for t in transports[1:]:
        t.on_full = None
        t.high_water = None
    results = []
    for i in range(15):
        if i == 5:
            # Bytes written past the writer (a pong, say): its own count still has room
            # for a direct write, which its transport then signals as over the limit.
            transports[0].buffered += 600
        results.append(fan_out(members, b"x" * 100))
        for t in transports[1:]:
            t.buffered = 0  # they read everything
        await one_iteration()
    # Closed during its write, it is not counted and gets nothing more (its closed
    # limit was not overwritten after the write).
    assert results == [n] * 5 + [n - 1] * 10
    assert len(transports[0].writes) == 6 and members[0].closed
    assert overflows.calls == 1
    assert all(len(t.writes) == 15 for t in transports[1:])
