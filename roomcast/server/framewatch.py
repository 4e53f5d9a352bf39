"""Frame headers of a client's WebSocket stream, checked before aiohttp reads them.

aiohttp accepts unmasked client frames (RFC 6455 5.1: the server must close the
connection) and holds the fragments of an unfinished message for as long as the client
keeps the connection alive with pings. :class:`FrameWatch` follows the frame boundaries
of the raw stream (headers only; payloads are skipped, not copied) and reports either.
It also tells a read that is one whole pong (:meth:`FrameWatch.lone_pong`), which the
guard takes itself: through aiohttp, each pong woke the connection's task.
"""

from __future__ import annotations

import time
from collections.abc import Callable

_FIN = 0x80
_MASK = 0x80
_CONTINUATION, _TEXT, _BINARY = 0x0, 0x1, 0x2
#: The first byte of a whole pong frame (FIN, no extension bits, opcode 0xA).
_PONG = _FIN | 0xA
#: The longest frame header: 2 bytes, an 8-byte length, a 4-byte mask key.
_MAX_HEADER = 14
#: The longest payload of a control frame, whose length is never extended (RFC 6455 5.5).
_MAX_CONTROL = 125

UNMASKED = "unmasked frame"
FRAGMENTS_TIMED_OUT = "fragmented message unfinished"


class FrameWatch:
    """Feed it every byte a client sends after the upgrade; it names the first violation."""

    __slots__ = ("_clock", "_fragment_since", "_head", "_skip", "fragment_timeout")

    def __init__(self, fragment_timeout: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.fragment_timeout = fragment_timeout
        self._clock = clock
        self._head = b""
        self._skip = 0
        self._fragment_since: float | None = None

    def feed(self, data: bytes) -> str | None:
        """Follow ``data``; the violation it completes (``UNMASKED``, ...), else None."""
        i, n = 0, len(data)
        while i < n:
            if self._skip:
                step = min(self._skip, n - i)
                self._skip -= step
                i += step
                continue
            head = self._head + data[i:i + _MAX_HEADER - len(self._head)]
            size = _header_size(head)
            if size is None or len(head) < size:
                i += len(head) - len(self._head)
                self._head = head
                continue
            i += size - len(self._head)
            self._head = b""
            problem = self._frame(head[:size])
            if problem is not None:
                return problem
        if (self._fragment_since is not None
                and self._clock() - self._fragment_since > self.fragment_timeout):
            return FRAGMENTS_TIMED_OUT
        return None

    def lone_pong(self, data: bytes) -> bool:
        """Whether ``data`` is exactly one well-formed masked pong (its length in the 7 bits
        of its second byte, as a control frame's must be), starting at a frame boundary
        while no fragmented message is open: it can be taken here, and the stream left
        to aiohttp is still whole frames (control frames do not touch fragmentation).

        Anything else is fed and passed on, a pong with an extended length included:
        read as 7 bits, a length of 126 made the frames behind it look like its payload.
        """
        if (len(data) < 6 or data[0] != _PONG or self._skip or self._head
                or self._fragment_since is not None):
            return False
        length = data[1] ^ _MASK  # 128 or more if the mask bit is not set
        return length <= _MAX_CONTROL and len(data) == 6 + length

    def _frame(self, head: bytes) -> str | None:
        if not head[1] & _MASK:
            return UNMASKED
        length = head[1] & 0x7F
        if length == 126:
            length = int.from_bytes(head[2:4], "big")
        elif length == 127:
            length = int.from_bytes(head[2:10], "big")
        self._skip = length
        opcode, fin = head[0] & 0x0F, head[0] & _FIN
        if opcode in (_TEXT, _BINARY) and not fin:
            self._fragment_since = self._clock()
        elif opcode in (_TEXT, _BINARY, _CONTINUATION) and fin:
            self._fragment_since = None
        return None


def _header_size(head: bytes) -> int | None:
    """The size of the frame header starting ``head``; None before its second byte."""
    if len(head) < 2:
        return None
    length = head[1] & 0x7F
    extended = 2 if length == 126 else 8 if length == 127 else 0
    return 2 + extended + (4 if head[1] & _MASK else 0)
