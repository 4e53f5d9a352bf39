"""FrameWatch.lone_pong: which client bytes the guard may take as a pong by itself."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode

from roomcast.server.framewatch import UNMASKED, FrameWatch

PONG = Frame(Opcode.PONG, b"roomcast").serialize(mask=True, extensions=[])


def watch() -> FrameWatch:
    return FrameWatch(fragment_timeout=60.0)


def test_a_whole_masked_pong_at_a_frame_boundary_is_one() -> None:
    w = watch()
    assert w.lone_pong(PONG)
    assert w.lone_pong(Frame(Opcode.PONG, b"").serialize(mask=True, extensions=[]))
    # After whole frames the stream is at a boundary again.
    assert w.feed(Frame(Opcode.TEXT, b'{"type": "heartbeat"}').serialize(
        mask=True, extensions=[])) is None
    assert w.lone_pong(PONG)


@pytest.mark.parametrize("data", [
    PONG[:-1],  # cut short
    PONG + PONG[:2],  # more after it
    Frame(Opcode.PING, b"roomcast").serialize(mask=True, extensions=[]),
    bytes([PONG[0] | 0x40]) + PONG[1:],  # RSV1 set: aiohttp must refuse it
    bytes([PONG[0] & 0x7F]) + PONG[1:],  # no FIN: a control frame may not be fragmented
], ids=["short", "longer", "ping", "rsv1", "no-fin"])
def test_anything_else_is_not(data: bytes) -> None:
    assert not watch().lone_pong(data)


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
