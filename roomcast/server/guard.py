"""Limits on connections that have not finished their handshake.

aiohttp holds a TCP connection as long as it likes until the request head is complete,
and buffers every header byte it is sent meanwhile. The guard wraps each connection's
protocol and cuts it when

- its request head (and, on the WebSocket path, the whole handshake) is not finished
  within ``timeout`` seconds of the connection being accepted;
- more than ``max_head_bytes`` arrive before the blank line that ends a request head;
- ``max_pending`` other connections are unfinished: the oldest of them is cut, so a flood
  of silent connections cannot hold every descriptor (real handshakes take milliseconds).

Each cut is counted in ``roomcast_connections_refused{reason}`` and logged, throttled.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol, cast

from roomcast import metrics
from roomcast.logs import Throttled
from roomcast.protocol.codes import CloseCode
from roomcast.protocol.frames import close_frame
from roomcast.server.framewatch import UNMASKED, FrameWatch

_log = logging.getLogger("roomcast.guard")

#: What a request head ends with (the lenient parser also takes bare newlines).
_HEAD_ENDS = (b"\r\n\r\n", b"\n\n")
#: Seconds a half-closed socket is kept for its close frame to reach the client.
LINGER = 2.0
_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
              b"Connection: close\r\nContent-Length: 0\r\n\r\n")


def half_close(transport: asyncio.Transport, code: int, reason: str) -> None:
    """Send a close frame and stop reading, without waiting for the client's answer.

    Closing a socket with unread input would reset it and lose the close frame: it is
    half-closed instead, and cut ``LINGER`` seconds later.
    """
    transport.write(close_frame(code, reason))
    transport.pause_reading()
    if transport.can_write_eof():
        transport.write_eof()
    asyncio.get_running_loop().call_later(LINGER, transport.abort)


class Heard(Protocol):
    """What a pong taken by the guard marks alive (a connection)."""

    last_seen: float


class ConnectionGuard:
    """Deadline, header-size cap and count of the connections still in their handshake."""

    def __init__(self, *, timeout: float, max_head_bytes: int, max_pending: int) -> None:
        self.timeout = timeout
        self.max_head_bytes = max_head_bytes
        self.max_pending = max_pending
        #: Unfinished connections, oldest first (dicts keep insertion order).
        self._pending: dict[asyncio.BaseTransport, _Guarded] = {}
        self._by_transport: dict[asyncio.BaseTransport, _Guarded] = {}
        self._cut = Throttled(_log, "connection_cut")
        #: The event loop's clock, once a connection is watched for pongs.
        self.clock: Callable[[], float] = time.monotonic

    @property
    def pending(self) -> int:
        return len(self._pending)

    def protocol_factory(self, factory: Callable[[], asyncio.Protocol]
                         ) -> Callable[[], asyncio.Protocol]:
        """``factory`` (aiohttp's server) with every protocol it makes guarded."""
        return lambda: _Guarded(self, factory())

    def finished(self, transport: asyncio.BaseTransport | None) -> None:
        """The handshake of this connection is over: no deadline, no longer pending."""
        guarded = self._by_transport.get(transport) if transport is not None else None
        if guarded is not None:
            guarded.finish()

    def next_request(self, transport: asyncio.BaseTransport | None) -> None:
        """A response was sent: count header bytes again for the next request (keep-alive)."""
        guarded = self._by_transport.get(transport) if transport is not None else None
        if guarded is not None:
            guarded.counting = True
            guarded.head_bytes = 0
            guarded.tail = b""

    def watch_frames(self, transport: asyncio.BaseTransport | None,
                     fragment_timeout: float, conn: Heard) -> None:
        """From now on check this upgraded connection's frame headers (server/framewatch.py),
        and take its pongs that arrive alone here, setting ``conn.last_seen`` (loop time)
        for each, instead of passing them to aiohttp (and waking the connection's task:
        most of what a ping costs)."""
        guarded = self._by_transport.get(transport) if transport is not None else None
        if guarded is not None:
            if self.clock is time.monotonic:
                self.clock = asyncio.get_running_loop().time
            guarded.frames = FrameWatch(fragment_timeout)
            guarded.heard = conn

    def _opened(self, guarded: _Guarded, transport: asyncio.BaseTransport) -> None:
        self._by_transport[transport] = guarded
        while len(self._pending) >= self.max_pending:
            oldest = next(iter(self._pending.values()))
            oldest.cut("pending_cap")
        self._pending[transport] = guarded

    def _closed(self, transport: asyncio.BaseTransport | None) -> None:
        if transport is not None:
            self._pending.pop(transport, None)
            self._by_transport.pop(transport, None)

    def _cut_one(self, reason: str, peer: Any) -> None:
        metrics.CONNECTIONS_REFUSED.labels(reason).inc()
        self._cut(asyncio.get_running_loop().time(), reason=reason, peer=peer,
                  pending=len(self._pending))


class _Guarded(asyncio.Protocol):
    """Passes everything to aiohttp's protocol, watching the handshake on the way."""

    __slots__ = ("_guard", "_inner", "_timer", "_transport", "counting", "frames", "head_bytes",
                 "heard", "tail")

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner = inner
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.counting = True
        self.frames: FrameWatch | None = None
        #: The connection its lone pongs mark alive (not a callback: a closure per
        #: connection cost ~250 bytes of every idle one).
        self.heard: Heard | None = None
        self.head_bytes = 0
        #: The last bytes seen, for a head end split across reads.
        self.tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they behave as one.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        self._guard._opened(self, transport)
        self._timer = asyncio.get_running_loop().call_later(
            self._guard.timeout, self.cut, "head_timeout"
        )
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.frames is not None:
            heard = self.heard
            if heard is not None and self.frames.lone_pong(data):
                heard.last_seen = self._guard.clock()
                return
            problem = self.frames.feed(data)
            if problem is not None:
                self.violation(problem)
                return
        elif self.counting:
            self.head_bytes += len(data)
            seen = self.tail + data
            if any(end in seen for end in _HEAD_ENDS):
                self.counting = False
            elif self.head_bytes > self._guard.max_head_bytes:
                self.cut("head_too_large", answer=_TOO_LARGE)
                return
            else:
                self.tail = seen[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        self.heard = None  # the connection holds this transport
        self._guard._closed(self._transport)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def finish(self) -> None:
        self._stop_timer()
        if self._transport is not None:
            self._guard._pending.pop(self._transport, None)

    def cut(self, reason: str, *, answer: bytes = b"") -> None:
        transport = self._transport
        self.finish()
        if transport is None or transport.is_closing():
            return
        self._guard._cut_one(reason, transport.get_extra_info("peername"))
        if answer:
            transport.write(answer)
            transport.close()  # sends the short answer, then closes
        else:
            transport.abort()

    def violation(self, problem: str) -> None:
        """Close a WebSocket that broke the protocol, without reading any more of it."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        self.frames = None
        code = CloseCode.PROTOCOL_ERROR if problem == UNMASKED else CloseCode.POLICY_VIOLATION
        self._guard._cut_one(problem.replace(" ", "_"), transport.get_extra_info("peername"))
        half_close(transport, code, problem)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

