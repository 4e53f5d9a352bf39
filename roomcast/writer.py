"""Per-connection write queues: bounded in bytes, never awaited, coalesced.

A frame fanned out to a connection that has had nothing written or queued since
the :class:`Flusher` last ran goes straight to its transport (:func:`fan_out`,
:meth:`ConnectionWriter.write`): one message at a time costs one
``transport.write`` per connection, as in a bare server. What arrives for it while
that pass is pending (the rest of a burst, in the same event-loop iteration) is
queued, and the flusher writes each queue with a single ``transport.write``, so a
burst costs at most two system calls per connection, not one per message.

A connection whose bytes in flight (our queue plus the transport's buffer) would
exceed the limit is a slow consumer: it is closed off the broadcast path, once.
The transport is asked for its buffer size only now and then: each writer has a
limit on :attr:`Flusher.sent`, a count of the bytes fanned out to many connections
at once, up to which it takes direct writes without asking (the byte limit minus
its buffer when last measured, less what it took since through its own writes).
A large fan-out with no pass pending (one message to a room) is then a bare loop:
compare, write; the count moves once per message, not once per recipient.

A room's fan-out (:func:`fan_out_room`) goes one step further: its :class:`RoomWriters`
keeps the transports of its open writers in a list, and with no pass pending the loop
reads nothing per recipient but the transport, and asks it nothing but ``is_closing``
before the write: the loop of a bare server. A writer's buffer is measured by the
transport itself instead (:meth:`ConnectionWriter.signal_when_full`): its high-water mark is
the writer's byte limit, and the ``pause_writing`` it sends its protocol when a write
takes the buffer past it closes the writer as a slow consumer
(:meth:`ConnectionWriter.transport_full`). Asking each transport for its buffer size had
cost ~170 instructions per recipient; reading each writer's limit, cache misses.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from typing import Protocol

from roomcast import metrics
from roomcast.logs import log_event

_log = logging.getLogger("roomcast.writer")

#: The limit of a closed writer: never enough for a direct write.
_CLOSED = -(1 << 62)
#: Fan-outs to at least this many connections with no pass pending take the bare loop
#: and count their bytes once, on the flusher; smaller ones (a user's few connections)
#: count them per writer, so heavy traffic to small rooms does not make every writer
#: measure its transport more often.
FAST_MIN = 16


class _Transport(Protocol):
    def write(self, data: bytes) -> None: ...

    def get_write_buffer_size(self) -> int: ...

    def is_closing(self) -> bool: ...

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None: ...


class Flusher:
    """Flushes every writer that got frames, once per loop iteration.

    ``tick`` counts its passes: a writer that wrote or queued during the current
    tick queues what follows until the next pass, which is scheduled by then.
    ``sent`` counts the bytes of the large fan-outs (every recipient's writer is
    charged them through its limit, recipient or not: an overestimate, never less).
    """

    __slots__ = ("_dirty", "_fanned", "closes", "scheduled", "sent", "tick")

    def __init__(self) -> None:
        self._dirty: list[ConnectionWriter] = []
        #: Large fan-outs written directly in this tick: their writers are busy until
        #: the pass, but their ticks are only set if something else comes (:meth:`settle`).
        self._fanned: list[Collection[ConnectionWriter]] = []
        self.scheduled = False
        self.tick = 0
        self.sent = 0
        #: Writers closed so far: a room's list of transports older than the last close
        #: is built again before its next bare loop.
        self.closes = 0

    def schedule(self) -> None:
        """Make sure a pass (ending the current tick) runs soon."""
        if not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def fanned(self, writers: Collection[ConnectionWriter], end: int) -> None:
        """Count a large fan-out written directly in this tick (``end``: ``sent`` with its
        frame): its writers are charged the bytes and stay busy until the pass."""
        self.sent = end
        self._fanned.append(writers)
        self.schedule()

    def mark(self, writer: ConnectionWriter) -> None:
        self._dirty.append(writer)
        self.schedule()

    def settle(self) -> None:
        """Mark the writers of this tick's large fan-outs as having written in it.

        A burst pays this once per tick; one message at a time never does.
        """
        fanned, self._fanned = self._fanned, []
        tick = self.tick
        for writers in fanned:
            for writer in writers:
                writer._tick = tick

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        self._fanned = []
        self.scheduled = False
        self.tick += 1
        for writer in dirty:
            try:
                writer.flush()
            except Exception:
                # One broken transport must not strand the writers after it (their dirty
                # flag would stay set and nothing would ever flush them again).
                writer.fail()


def fan_out(writers: Collection[ConnectionWriter], frame: bytes) -> int:
    """:meth:`ConnectionWriter.write` the same frame to every writer; how many took it.

    The writers share one flusher (the gateway's). The idle cases are inlined: this
    loop is the whole cost of one message to a room.
    """
    sent = len(writers)
    if not sent:
        return 0
    size = len(frame)
    flusher = next(iter(writers))._flusher
    if sent >= FAST_MIN and not flusher.scheduled:
        # Nothing was written or queued since the last pass: every writer is idle,
        # and only its limit needs checking.
        end = flusher.sent + size
        closes = flusher.closes
        for writer in writers:
            if writer._limit >= end:
                transport = writer._transport
                if not transport.is_closing():
                    try:
                        transport.write(frame)
                    except Exception:
                        writer.fail()
                        sent -= 1
            elif not writer._write_measured(frame, end):
                sent -= 1
        if flusher.closes != closes:
            # A transport signalled a full buffer as it was written to (rare): count again.
            sent = sum(not writer.closed for writer in writers)
        flusher.fanned(writers, end)
        return sent
    if flusher._fanned:
        flusher.settle()
    for writer in writers:
        flusher = writer._flusher
        tick = flusher.tick
        if writer._tick == tick:
            # The rest of a burst: queued behind what this tick wrote.
            if not writer.enqueue(frame):
                sent -= 1
            continue
        limit = writer._limit - size
        if limit >= flusher.sent:
            # Set before the write: a transport that signals a full buffer closes the
            # writer during it, and its closed limit must stay.
            writer._limit = limit
            writer._tick = tick
            transport = writer._transport
            if not transport.is_closing():
                try:
                    transport.write(frame)
                except Exception:
                    writer.fail()
                    sent -= 1
                    continue
                if writer.closed:
                    sent -= 1
                    continue
            if not flusher.scheduled:
                flusher.schedule()
            continue
        if not writer.write(frame):
            sent -= 1
    return sent


class RoomWriters:
    """A room's writers, and the transports of the open ones for :func:`fan_out_room`.

    Built at a room's first message after a change of members; the transports are
    listed again after any writer closes (a closed writer takes no frame). Its writers
    share one flusher (the gateway's), whose count of closes says when.
    """

    __slots__ = ("_closes", "_measured", "_transports", "writers")

    def __init__(self, writers: list[ConnectionWriter]) -> None:
        self.writers = writers
        self._transports: list[_Transport] = []
        self._measured: list[ConnectionWriter] = []
        self._closes = -1

    def transports(self, closes: int) -> list[_Transport]:
        """The transports of the open writers their transport signals when full, as of
        ``closes`` (the flusher's count); the other open writers are :meth:`measured`."""
        if self._closes != closes:
            open_ = [w for w in self.writers if not w.closed]
            self._transports = [w._transport for w in open_ if w.signalled]
            self._measured = [w for w in open_ if not w.signalled]
            self._closes = closes
        return self._transports

    def measured(self) -> list[ConnectionWriter]:
        """The open writers whose buffer must be measured before a write (as listed by the
        last :meth:`transports`)."""
        return self._measured


def fan_out_room(room: RoomWriters, frame: bytes) -> int:
    """:func:`fan_out` to a room's writers; how many took the frame.

    With no pass pending every writer's queue is empty, so each open transport takes the
    frame at once; one that the write takes past its writer's limit closes that writer
    through its protocol (:meth:`ConnectionWriter.transport_full`) as it happens.
    """
    writers = room.writers
    flusher = writers[0]._flusher if writers else None
    if flusher is None or len(writers) < FAST_MIN or flusher.scheduled:
        return fan_out(writers, frame)
    closes = flusher.closes
    transports = room.transports(closes)
    broken: list[_Transport] = []
    for transport in transports:
        if not transport.is_closing():
            try:
                transport.write(frame)
            except Exception:
                broken.append(transport)
    end = flusher.sent + len(frame)
    # Writers closed by now were cut by their transport's signal, in this loop.
    sent = len(transports) - (flusher.closes - closes)
    if broken:
        by_transport = {id(w._transport): w for w in writers}
        for transport in broken:
            writer = by_transport[id(transport)]
            if not writer.closed:
                writer.fail()
                sent -= 1
    for writer in room.measured():
        if writer._write_measured(frame, end):
            sent += 1
    flusher.fanned(writers, end)
    return sent


class ConnectionWriter:
    """The outgoing queue of one connection."""

    __slots__ = (
        "_flusher",
        "_limit",
        "_tick",
        "_transport",
        "closed",
        "dirty",
        "max_bytes",
        "on_overflow",
        "pending",
        "pending_bytes",
        "signalled",
    )

    def __init__(
        self,
        transport: _Transport,
        flusher: Flusher,
        *,
        max_bytes: int,
        on_overflow: Callable[[], None] | None = None,
    ) -> None:
        self._transport = transport
        self._flusher = flusher
        #: Called once, synchronously, when the queue overflows; must not block.
        self.on_overflow = on_overflow
        self.max_bytes = max_bytes
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.dirty = False
        self.closed = False
        #: The flusher tick in which this writer last wrote or queued (so a dirty
        #: writer's is always the current one, and nothing overtakes its queue).
        self._tick = -1
        #: Direct writes need no measure while ``flusher.sent`` plus their size stays
        #: within this (0: measure the first).
        self._limit = 0
        #: Whether its transport reports a buffer past ``max_bytes`` (:meth:`signal_when_full`).
        self.signalled = False

    def signal_when_full(self) -> None:
        """From now on the transport's protocol calls :meth:`transport_full` on its
        ``pause_writing``: set the transport's high-water mark to the byte limit.

        Only a transport with an empty buffer is sure not to be paused already (a paused
        one would not signal again before it resumed); any other stays measured.
        """
        transport = self._transport
        if transport.get_write_buffer_size() == 0 and not transport.is_closing():
            transport.set_write_buffer_limits(high=self.max_bytes)
            self.signalled = True

    def transport_full(self) -> None:
        """The transport's buffer went past the byte limit: a slow consumer (once)."""
        if not self.closed:
            self._overflow()

    def write(self, frame: bytes) -> bool:
        """Write now if idle since the last pass, else queue; False if closed or overflowed."""
        flusher = self._flusher
        if flusher._fanned:
            flusher.settle()
        if self._tick == flusher.tick or self.closed:
            return self.enqueue(frame)
        if not self._write_measured(frame, flusher.sent):
            return False
        self._tick = flusher.tick
        flusher.schedule()
        return True

    def _write_measured(self, frame: bytes, end: int) -> bool:
        """Write to an idle writer after measuring its transport's buffer (``end``:
        ``flusher.sent`` with this frame counted); False if closed or overflowed."""
        if self.closed:
            return False
        transport = self._transport
        if transport.is_closing():
            return True
        in_flight = transport.get_write_buffer_size() + len(frame)
        if in_flight > self.max_bytes:
            self._overflow()
            return False
        try:
            transport.write(frame)
        except Exception:
            self.fail()
            return False
        if self.closed:  # a TLS transport signals a buffer at the limit already
            return False
        self._limit = end + self.max_bytes - in_flight
        return True

    def enqueue(self, frame: bytes) -> bool:
        """Queue one frame for the next pass; False if the connection is closed or overflowed."""
        if self.closed:
            return False
        self._tick = self._flusher.tick
        self.pending.append(frame)
        self.pending_bytes += len(frame)
        if self.pending_bytes > self.max_bytes:
            self._overflow()
            return False
        if not self.dirty:
            self.dirty = True
            self._flusher.mark(self)
        return True

    def flush(self) -> None:
        """Write everything queued in one call (coalescing frames)."""
        self.dirty = False
        if self.closed or not self.pending:
            return
        transport = self._transport
        if transport.is_closing():
            self.pending.clear()
            self.pending_bytes = 0
            return
        in_flight = transport.get_write_buffer_size() + self.pending_bytes
        if in_flight > self.max_bytes:
            self._overflow()
            return
        pending = self.pending
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        self.pending = []
        self.pending_bytes = 0
        transport.write(data)
        if not self.closed:  # see _write_measured
            self._limit = self._flusher.sent + self.max_bytes - in_flight

    def close(self, *, flush: bool) -> None:
        """Stop accepting frames; write what is queued first if ``flush``."""
        if self.closed:
            return
        if flush:
            self.flush()
        self._shut()

    def fail(self) -> None:
        """The transport raised on write: drop the queue and close, as for an overflow."""
        metrics.TASK_FAILURES.labels("flush").inc()
        log_event(_log, "flush_failed", logging.ERROR, exc_info=True)
        self._overflow()

    def _overflow(self) -> None:
        overflow = self.on_overflow
        self._shut()
        if overflow is not None:
            overflow()

    def _shut(self) -> None:
        """Closed, with nothing queued."""
        if not self.closed:
            self._flusher.closes += 1
        self.closed = True
        self._limit = _CLOSED
        self.pending = []
        self.pending_bytes = 0
        # The callback is the connection's closer, which holds this writer: kept, the pair
        # would outlive the connection until the collector's next full pass.
        self.on_overflow = None

