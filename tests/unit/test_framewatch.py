"""The guard's view of a client's stream: where a request head ends, what it may take as
a pong by itself (FrameWatch.lone_pong), and frame boundaries that stay in step however
the stream is split into reads."""

from __future__ import annotations

import asyncio
import itertools
import os
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode

from roomcast.protocol.frames import close_frame
from roomcast.server.framewatch import FRAGMENTS_TIMED_OUT, UNMASKED, FrameWatch
from roomcast.server.guard import ConnectionGuard

PONG = Frame(Opcode.PONG, b"roomcast").serialize(mask=True, extensions=[])


def watch() -> FrameWatch:
    return FrameWatch(fragment_timeout=60.0)


def header(first: int, size: int, key: bytes) -> bytes:
    """A masked client frame's header, its length as short as it can be."""
    length = (bytes([0x80 | size]) if size < 126 else b"\xfe" + size.to_bytes(2, "big")
              if size < 1 << 16 else b"\xff" + size.to_bytes(8, "big"))
    return bytes([first]) + length + key


def masked(first: int, payload: bytes, key: bytes = b"\xff\x7f\xff\xff") -> bytes:
    """A masked client frame with this first byte and mask key (websockets picks a
    random key)."""
    return header(first, len(payload), key) + bytes(
        b ^ key[i % 4] for i, b in enumerate(payload))


def test_a_whole_masked_pong_at_a_frame_boundary_is_one() -> None:
    w = watch()
    assert w.lone_pong(PONG)
    assert w.lone_pong(Frame(Opcode.PONG, b"").serialize(mask=True, extensions=[]))
    assert w.lone_pong(masked(0x8A, b"p" * 125))
    # After whole frames the stream is at a boundary again.
    assert w.feed(Frame(Opcode.TEXT, b'{"type": "heartbeat"}').serialize(
        mask=True, extensions=[])) is None
    assert w.lone_pong(PONG)


#: A text frame of 124 bytes: what a pong whose length reads 126 seemed to carry.
HIDDEN = masked(0x81, b'{"type": "heartbeat", "id": "hidden"}'.ljust(118))


@pytest.mark.parametrize("data", [
    PONG[:-1],  # cut short
    PONG + PONG[:2],  # more after it
    Frame(Opcode.PING, b"roomcast").serialize(mask=True, extensions=[]),
    bytes([PONG[0] | 0x40]) + PONG[1:],  # RSV1 set: aiohttp must refuse it
    bytes([PONG[0] & 0x7F]) + PONG[1:],  # no FIN: a control frame may not be fragmented
    # An extended length, which no control frame may have: 124 bytes in 126 form...
    b"\x8a\xfe" + (124).to_bytes(2, "big") + b"\0\0\0\0" + b"p" * 124,
    # ... or an empty payload, with a text frame behind it making up 6 + 126 bytes.
    b"\x8a\xfe" + (0).to_bytes(2, "big") + b"\0\0\0\0" + HIDDEN,
    b"\x8a\xff" + (0).to_bytes(8, "big") + b"\0\0\0\0" + b"p" * 119,  # 6 + 127 bytes
], ids=["short", "longer", "ping", "rsv1", "no-fin", "len-126-non-minimal", "len-126-hides-text",
        "len-127"])
def test_anything_else_is_not(data: bytes) -> None:
    assert not watch().lone_pong(data)


def test_a_pong_hiding_a_text_frame_is_fed_and_the_stream_followed() -> None:
    w = watch()
    data = b"\x8a\xfe" + (0).to_bytes(2, "big") + b"\0\0\0\0" + HIDDEN
    assert len(data) == 6 + 126  # what the length byte alone said
    assert w.feed(data) is None
    assert w.lone_pong(PONG)  # the hidden frame was whole: at a boundary again


def test_an_unmasked_pong_is_not_and_feeding_it_names_the_violation() -> None:
    unmasked = Frame(Opcode.PONG, b"roomcast").serialize(mask=False, extensions=[])
    w = watch()
    assert not w.lone_pong(unmasked)
    assert w.feed(unmasked) == UNMASKED


def test_not_in_the_middle_of_a_frame() -> None:
    w = watch()
    text = Frame(Opcode.TEXT, b"x" * 40).serialize(mask=True, extensions=[])
    assert w.feed(text[:10]) is None  # header read, payload pending
    assert not w.lone_pong(PONG)  # these bytes are payload, whatever they look like


def test_not_while_a_fragmented_message_is_open() -> None:
    # The fragment timeout is checked on feed: a client keeping an unfinished message
    # open with pongs must still reach it.
    w = watch()
    assert w.feed(Frame(Opcode.TEXT, b"part", fin=False).serialize(
        mask=True, extensions=[])) is None
    assert not w.lone_pong(PONG)
    assert w.feed(Frame(Opcode.CONT, b"end").serialize(mask=True, extensions=[])) is None
    assert w.lone_pong(PONG)


_FRAMES = st.tuples(
    # Whole text, binary, ping, pong; a first fragment, a middle one, the last one.
    st.sampled_from([0x81, 0x82, 0x89, 0x8A, 0x01, 0x00, 0x80]),
    st.sampled_from([0, 1, 125, 126, 127, 65535, 65536]),
    st.binary(min_size=4, max_size=4),
)


@given(frames=st.lists(_FRAMES, max_size=6), cuts=st.lists(st.integers(0, 1 << 18), max_size=8))
def test_frame_boundaries_stay_in_step_however_the_stream_is_split(
    frames: list[tuple[int, int, bytes]], cuts: list[int],
) -> None:
    # Payloads left unmasked: the watch never reads them.
    stream = b"".join(header(first, size, key) + bytes(size)
                      for first, size, key in frames)
    fragment_open = False
    for first, _, _ in frames:
        if first == 0x01:
            fragment_open = True
        elif first in (0x80, 0x81, 0x82):
            fragment_open = False
    now = [0.0]
    w = FrameWatch(fragment_timeout=10.0, clock=lambda: now[0])
    points = sorted({c % (len(stream) + 1) for c in cuts})
    for start, end in itertools.pairwise([0, *points, len(stream)]):
        assert w.feed(stream[start:end]) is None
    # At a boundary now: a pong alone is one (no fragment open), an unmasked frame is found.
    assert w.lone_pong(PONG) is not fragment_open
    assert w.feed(Frame(Opcode.TEXT, b"x").serialize(mask=False, extensions=[])) == UNMASKED
    # And a fragmented message left open after the same stream times out.
    w = FrameWatch(fragment_timeout=10.0, clock=lambda: now[0])
    assert w.feed(stream + masked(0x01, b"part")) is None
    now[0] = 11.0
    assert w.feed(PONG) == FRAGMENTS_TIMED_OUT


# --- the guard, on a fake transport -------------------------------------------------

HEAD = b"GET /websocket/connect HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n"


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closing = False
        self.eof = False
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.eof, "written after write_eof"
        self.written += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True


class Recorder(asyncio.Protocol):
    """aiohttp's place: what the guard passes on."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.paused = 0

    def data_received(self, data: bytes) -> None:
        self.received += data

    def pause_writing(self) -> None:
        self.paused += 1


@dataclass
class FakeWriter:
    closed: bool = False
    signalled: bool = False
    full: int = 0

    def close(self, *, flush: bool) -> None:
        assert not flush
        self.closed = True

    def signal_when_full(self) -> None:
        self.signalled = True

    def transport_full(self) -> None:
        self.full += 1


@dataclass
class FakeCloser:
    code: int | None = None
    reason: str | None = None


@dataclass
class FakeConn:
    last_seen: float = 0.0
    writer: FakeWriter = field(default_factory=FakeWriter)
    closer: FakeCloser = field(default_factory=FakeCloser)


@dataclass
class Guarded:
    guard: ConnectionGuard
    protocol: asyncio.Protocol
    transport: FakeTransport
    inner: Recorder
    conn: FakeConn = field(default_factory=FakeConn)

    def feed(self, data: bytes, *cuts: int) -> None:
        """``data`` in reads cut at these offsets."""
        for start, end in itertools.pairwise([0, *cuts, len(data)]):
            if end > start:
                self.protocol.data_received(data[start:end])

    def watch(self) -> None:
        self.guard.watch_frames(self.transport, 60.0, self.conn)


def guarded(max_head_bytes: int = 32768) -> Guarded:
    guard = ConnectionGuard(timeout=60.0, max_head_bytes=max_head_bytes, max_pending=100)
    inner = Recorder()
    protocol = guard.protocol_factory(lambda: inner)()
    transport = FakeTransport()
    protocol.connection_made(transport)
    return Guarded(guard, protocol, transport, inner)


TOO_LARGE = b"HTTP/1.1 431 "


async def test_the_head_ends_at_its_blank_line_and_what_follows_waits_for_the_watch() -> None:
    frames = masked(0x81, b'{"type": "heartbeat"}') + PONG
    stream = HEAD + frames
    for one in range(len(stream) + 1):
        for two in range(one, len(stream) + 1, 7):
            g = guarded()
            g.feed(stream, one, two)
            assert g.inner.received == HEAD, (one, two)
            g.watch()
            assert g.inner.received == stream, (one, two)
            assert not g.transport.written


async def test_frames_with_the_head_are_checked_from_their_first_byte() -> None:
    unmasked = Frame(Opcode.TEXT, b'{"type": "heartbeat"}').serialize(mask=False, extensions=[])
    valid = masked(0x81, b'{"type": "heartbeat", "id": "1"}')  # mask key ff 7f ff ff
    for early in range(len(valid) + 1):
        # Part of a valid frame with the head, the rest after the 101, then an unmasked one.
        g = guarded()
        g.feed(HEAD + valid[:early], len(HEAD) // 2)
        g.watch()
        g.feed(valid[early:])
        assert g.inner.received == HEAD + valid, early
        g.feed(unmasked)
        assert g.transport.written == close_frame(1002, "unmasked frame"), early
        assert g.transport.eof and not g.transport.reading
        assert g.inner.received == HEAD + valid
    # An unmasked frame with the head: nothing held reaches aiohttp.
    g = guarded()
    g.feed(HEAD + valid + unmasked)
    g.watch()
    assert g.transport.written == close_frame(1002, "unmasked frame")
    assert g.inner.received == HEAD


async def test_a_violation_closes_the_writer_and_names_the_close() -> None:
    g = guarded()
    g.feed(HEAD)
    g.watch()
    g.feed(Frame(Opcode.TEXT, b"{}").serialize(mask=False, extensions=[]))
    assert g.conn.writer.closed
    assert (g.conn.closer.code, g.conn.closer.reason) == (1002, "unmasked frame")


async def test_a_closer_that_already_closed_keeps_its_code() -> None:
    g = guarded()
    g.conn.closer.code, g.conn.closer.reason = 1008, "rate limit exceeded"
    g.feed(HEAD)
    g.watch()
    g.feed(Frame(Opcode.TEXT, b"{}").serialize(mask=False, extensions=[]))
    assert (g.conn.closer.code, g.conn.closer.reason) == (1008, "rate limit exceeded")


def head_of(size: int, lead: bytes = b"") -> bytes:
    """A request head of exactly ``size`` bytes, blank line and ``lead`` included."""
    start = lead + b"GET /healthz HTTP/1.1\r\nX-Pad: "
    head = start + b"p" * (size - len(start) - 4) + b"\r\n\r\n"
    assert len(head) == size
    return head


@pytest.mark.parametrize("lead", [b"", b"\r\n\r\n", b"\n"], ids=["plain", "blank-lines", "lf"])
async def test_the_cap_counts_the_whole_head_however_it_is_split(lead: bytes) -> None:
    cap = 100
    for size, refused in ((cap, False), (cap + 1, True)):
        head = head_of(size, lead)
        for one in range(len(head) + 1):
            for two in range(one, len(head) + 1, 5):
                g = guarded(max_head_bytes=cap)
                g.feed(head + b"\x81", one, two)
                if refused:
                    assert g.transport.written.startswith(TOO_LARGE), (size, one, two)
                    assert g.transport.closing
                else:
                    assert not g.transport.written, (size, one, two)
                    assert g.inner.received == head


async def test_blank_lines_before_a_request_end_no_head() -> None:
    g = guarded()
    g.feed(b"\r\n\r\n" + HEAD + b"\x81\x80", 2, 5)
    assert g.inner.received == b"\r\n\r\n" + HEAD


async def test_a_requests_body_waits_for_its_handler_then_the_next_head_is_counted() -> None:
    g = guarded(max_head_bytes=100)
    head = b"POST /x HTTP/1.1\r\nContent-Length: 4\r\n\r\n"
    g.feed(head + b"bo", len(head) - 1)
    assert g.inner.received == head
    g.feed(b"dy")
    g.guard.finished(g.transport)
    assert g.inner.received == head + b"body"
    g.feed(b"more body, read by the handler")  # neither held nor counted
    g.guard.next_request(g.transport)
    g.feed(head_of(101)[:60])
    g.feed(head_of(101)[60:])
    assert g.transport.written.startswith(TOO_LARGE)


async def test_with_its_length_known_a_body_is_passed_on_exactly_and_the_next_head_counted(
) -> None:
    body = b"a\r\n\r\nb"  # a blank line inside a body ends no head
    head = b"POST /x HTTP/1.1\r\nContent-Length: 6\r\n\r\n"
    nxt = b"GET /y HTTP/1.1\r\n\r\n"
    stream = head + body + nxt + b"rest"
    for cut in range(len(head), len(stream)):
        g = guarded(max_head_bytes=100)
        g.feed(stream, cut)
        g.guard.finished(g.transport, len(body))
        # The next head goes on (counted); what follows it waits for its handler.
        assert g.inner.received == head + body + nxt, cut
        assert not g.guard.next_request(g.transport)
        g.guard.finished(g.transport, 0)
        assert g.inner.received == stream, cut


async def test_a_head_over_the_cap_behind_a_request_closes_after_its_answer() -> None:
    g = guarded(max_head_bytes=100)
    head = b"GET /x HTTP/1.1\r\n\r\n"
    g.feed(head + head_of(101)[:50])
    g.guard.finished(g.transport, 0)
    g.feed(head_of(101)[50:])
    assert g.inner.received == head + head_of(101)[:50]  # the rest is dropped
    assert not g.transport.reading and not g.transport.written  # no 431 before the answer
    assert g.guard.next_request(g.transport)  # the connection closes after it


async def test_reading_pauses_while_much_is_held_and_resumes_when_it_is_passed_on() -> None:
    g = guarded()
    payload = os.urandom(70000)
    frame = masked(0x82, payload)
    g.feed(HEAD + frame[:40000], 100)
    assert g.transport.reading
    g.feed(frame[40000:])
    assert not g.transport.reading
    g.watch()
    assert g.transport.reading
    assert g.inner.received == HEAD + frame


async def test_a_full_write_buffer_is_told_to_the_watched_connections_writer() -> None:
    g = guarded()
    g.feed(HEAD)
    g.guard.finished(g.transport)
    g.protocol.pause_writing()  # before the upgrade: aiohttp's alone
    assert g.inner.paused == 1 and not g.conn.writer.signalled
    g.watch()
    assert g.conn.writer.signalled
    g.protocol.pause_writing()
    assert g.conn.writer.full == 1 and g.inner.paused == 2
