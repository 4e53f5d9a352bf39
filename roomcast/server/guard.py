"""Limits on connections that have not finished their handshake.

aiohttp holds a TCP connection as long as it likes until the request head is complete,
and buffers every header byte it is sent meanwhile. The guard wraps each connection's
protocol and cuts it when

- its request head (and, on the WebSocket path, the whole handshake) is not finished
  within ``timeout`` seconds of the connection being accepted;
- its request head, up to and including the blank line that ends it, is longer than
  ``max_head_bytes``, however the head is split into reads;
- ``max_pending`` other connections are unfinished: the oldest of them is cut, so a flood
  of silent connections cannot hold every descriptor (real handshakes take milliseconds).

Each cut is counted in ``roomcast_connections_refused{reason}`` and logged, throttled.

The guard finds where each request head ends, to the byte. What a client sends after it
(in the same read or later) is held back until the request's handler starts
(:meth:`ConnectionGuard.finished`) or its WebSocket is watched
(:meth:`ConnectionGuard.watch_frames`): frames sent with the upgrade request then go
through the frame watch (server/framewatch.py) from their first byte, as later frames
do. Passed on at once, they reached aiohttp unchecked, and a frame split across the end
of the head put the watch out of step with the stream for the connection's whole life.

A plain request whose body length is known has exactly that many bytes passed on as its
body; what follows is counted as the next request's head, pipelined or not. One over the
cap behind a request still being answered is not read further, and the connection
closes after that answer (a 431 then would be taken for it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol, cast, runtime_checkable

from roomcast import metrics
from roomcast.logs import Throttled
from roomcast.protocol.codes import CloseCode
from roomcast.protocol.frames import close_frame
from roomcast.server.framewatch import UNMASKED, FrameWatch

_log = logging.getLogger("roomcast.guard")

#: What ends a request head (aiohttp's parsers, C and Python, take nothing else).
_HEAD_END = b"\r\n\r\n"
#: What aiohttp skips before a request line: empty lines start no head.
_EMPTY_LINE = b"\r\n"
#: Bytes held after a request head beyond which reading pauses until they are passed on
#: (aiohttp buffers as much before it pauses an upgraded connection).
_HOLD_MAX = 1 << 16
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


class _Writer(Protocol):
    def close(self, *, flush: bool) -> None: ...

    def signal_when_full(self) -> None: ...

    def transport_full(self) -> None: ...


@runtime_checkable
class _Named(Protocol):
    """A closer that keeps the code and reason its connection was closed with, which the
    connection's disconnect line reports (server/websocket.py)."""

    code: int | None
    reason: str | None


class Heard(Protocol):
    """The connection behind a watched socket: a pong taken by the guard marks it alive; a
    violation closes its writer and names the close to its closer; a full write buffer
    (``pause_writing``) tells its writer."""

    last_seen: float

    @property
    def writer(self) -> _Writer: ...

    @property
    def closer(self) -> object: ...


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

    def finished(self, transport: asyncio.BaseTransport | None, body: int | None = None
                 ) -> None:
        """The handshake of this connection is over: no deadline, no longer pending, and
        what followed the request's head goes on to aiohttp (a body, say).

        ``body``: the length of the request's body, where it is known and the connection
        stays HTTP. The guard then passes exactly that on and counts what follows as the
        next request's head (pipelined behind this one); otherwise it counts again only
        from :meth:`next_request`.
        """
        guarded = self._by_transport.get(transport) if transport is not None else None
        if guarded is not None:
            guarded.finish()
            guarded.answering = True
            if body is not None and guarded.held is not None:
                guarded.body_left = body
            guarded.release()

    def next_request(self, transport: asyncio.BaseTransport | None) -> bool:
        """A request's handler returned: count header bytes again for the next request
        (keep-alive), unless the guard is following the connection's requests already.

        True if the connection must close after this answer: a head pipelined behind the
        request went over the cap (counted as cut; a 431 would be mistaken for the answer).
        """
        guarded = self._by_transport.get(transport) if transport is not None else None
        if guarded is None:
            return False
        guarded.answering = False
        if guarded.refused:
            guarded.refused = False
            self._cut_one("head_too_large", guarded.peer())
            return True
        if guarded.body_left < 0 and guarded.held is None and not guarded.counting:
            guarded.count_head()
        return False

    def watch_frames(self, transport: asyncio.BaseTransport | None,
                     fragment_timeout: float, conn: Heard) -> None:
        """From now on check this upgraded connection's frame headers (server/framewatch.py),
        and take its pongs that arrive alone here, setting ``conn.last_seen`` (loop time)
        for each, instead of passing them to aiohttp (and waking the connection's task:
        most of what a ping costs). Its transport's ``pause_writing`` is passed on to
        ``conn.writer`` too, with the writer's limit as the high-water mark.

        Frames the client sent before the 101, held since the end of its request head,
        are checked first: they may already break the protocol."""
        guarded = self._by_transport.get(transport) if transport is not None else None
        if guarded is not None:
            if self.clock is time.monotonic:
                self.clock = asyncio.get_running_loop().time
            guarded.frames = FrameWatch(fragment_timeout)
            guarded.heard = conn
            # Only now: the limit's pause_writing must find the connection to tell.
            conn.writer.signal_when_full()
            guarded.release()

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

    __slots__ = ("_guard", "_inner", "_timer", "_transport", "answering", "body_left",
                 "counting", "frames", "head_bytes", "heard", "held", "refused", "tail")

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
        #: The last bytes of the head so far, for an end split across reads; empty until
        #: the head's first byte.
        self.tail = b""
        #: What arrived after a request head, until :meth:`release` (None: nothing held).
        self.held: bytearray | None = None
        #: Bytes of the current request's body still to pass on before the next head is
        #: counted (-1: not followed).
        self.body_left = -1
        #: A request's handler started and its response is not out yet.
        self.answering = False
        #: A head pipelined behind that request is over the cap: cut once it is answered.
        self.refused = False

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
        frames = self.frames
        if frames is not None:  # an open WebSocket's reads, the hot path: inline
            heard = self.heard
            if heard is not None and frames.lone_pong(data):
                heard.last_seen = self._guard.clock()
                return
            problem = frames.feed(data)
            if problem is not None:
                self.violation(problem)
                return
        elif self.held is not None:
            self._hold(data)
            return
        elif self.body_left >= 0:
            self._body_received(data)
            return
        elif self.counting:
            self._head_received(data)
            return
        self._inner.data_received(data)

    def _body_received(self, data: bytes) -> None:
        """Pass the rest of a request's body on; count what follows it as a head."""
        left = self.body_left
        if len(data) < left:
            self.body_left = left - len(data)
            self._inner.data_received(data)
            return
        if left:
            self._inner.data_received(data[:left])
        self.count_head()
        if len(data) > left:
            self._head_received(data[left:])

    def count_head(self) -> None:
        """What comes next is a request head: count it from its first byte."""
        self.body_left = -1
        self.counting = True
        self.head_bytes = 0
        self.tail = b""

    def _head_received(self, data: bytes) -> None:
        """Pass a request head on, up to its end; hold what follows it (see :meth:`release`)."""
        end = self._head_end(data)
        if end is None:
            return
        if end < 0:
            self._inner.data_received(data)
            return
        self.counting = False
        self.held = bytearray()
        if end == len(data):
            self._inner.data_received(data)
        else:
            self._inner.data_received(data[:end])
            self._hold(data[end:])

    def _head_end(self, data: bytes) -> int | None:
        """Where in ``data`` the request head ends (just past its blank line), -1 if it does
        not end in ``data``; None if the head is over the cap, and the connection cut.

        The size is checked with the end known, so a head that ends in the read taking it
        over the cap is refused too. Only the 3 last bytes of a head are kept, never a copy
        of the read.
        """
        tail = self.tail
        start = 0
        if not tail and data[:1] in (b"\r", b"\n"):
            # aiohttp skips these: a blank line among them ends no head.
            start = len(data) - len(data.lstrip(_EMPTY_LINE))
        found = (tail + data[start:start + 3]).find(_HEAD_END)
        if found >= 0:  # across the previous read and this one
            end = start + found + len(_HEAD_END) - len(tail)
        else:
            found = data.find(_HEAD_END, start)
            end = found + len(_HEAD_END) if found >= 0 else -1
        size = self.head_bytes + (end if end >= 0 else len(data))
        if size > self._guard.max_head_bytes:
            if self.answering:
                # Pipelined behind a request still being answered: a 431 would be taken for
                # that request's answer. Read nothing more; close after that answer.
                self.refused = True
                if self._transport is not None:
                    self._transport.pause_reading()
            else:
                self.cut("head_too_large", answer=_TOO_LARGE)
            return None
        if end < 0:
            self.head_bytes = size
            self.tail = (tail + data[max(start, len(data) - 3):])[-3:]
        return end

    def _hold(self, data: bytes) -> None:
        """Keep bytes that came after a request head; past ``_HOLD_MAX`` stop reading."""
        held = self.held
        assert held is not None
        before = len(held)
        held += data
        if before < _HOLD_MAX <= len(held) and self._transport is not None:
            self._transport.pause_reading()

    def release(self) -> None:
        """Pass on what was held since the end of the request head: through the frame watch
        if the connection is a watched WebSocket by now, else to aiohttp.

        Held until then, frames sent with an upgrade request are checked from their first
        byte; a plain request's body or the next pipelined request waits only until its
        handler starts (microseconds after aiohttp has the head).
        """
        held, self.held = self.held, None
        transport = self._transport
        if held is None or transport is None or transport.is_closing():
            return
        if len(held) >= _HOLD_MAX:
            transport.resume_reading()
        if held:
            self.data_received(bytes(held))

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        self.heard = None  # the connection holds this transport
        self.held = None
        self._guard._closed(self._transport)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        heard = self.heard
        if heard is not None:
            heard.writer.transport_full()
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def finish(self) -> None:
        self._stop_timer()
        if self._transport is not None:
            self._guard._pending.pop(self._transport, None)

    def peer(self) -> Any:
        return self._transport.get_extra_info("peername") if self._transport else None

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
        """Close a WebSocket that broke the protocol, without reading any more of it.

        Its connection's writer takes no more frames: room traffic written after the
        half-close failed, and was logged and counted as a slow consumer. Its closer
        learns the code and reason, for the disconnect line.
        """
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        self.frames = None
        code = CloseCode.PROTOCOL_ERROR if problem == UNMASKED else CloseCode.POLICY_VIOLATION
        self._guard._cut_one(problem.replace(" ", "_"), transport.get_extra_info("peername"))
        conn = self.heard
        if conn is not None:
            conn.writer.close(flush=False)
            closer = conn.closer
            if isinstance(closer, _Named) and closer.code is None:
                closer.code, closer.reason = code, problem
        half_close(transport, code, problem)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

