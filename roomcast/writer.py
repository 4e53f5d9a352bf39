"""Per-connection write queues: bounded in bytes, never awaited, coalesced.

``enqueue`` only appends; once per event-loop iteration the :class:`Flusher`
writes each dirty connection's queued frames with a single ``transport.write``,
so a burst of messages costs one system call per connection, not one per message.
A connection whose queued bytes (ours plus the transport's buffer) exceed the
limit is a slow consumer: it is closed off the broadcast path, once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from roomcast import metrics
from roomcast.logs import log_event

_log = logging.getLogger("roomcast.writer")


class _Transport(Protocol):
    def write(self, data: bytes) -> None: ...

    def get_write_buffer_size(self) -> int: ...

    def is_closing(self) -> bool: ...


class Flusher:
    """Flushes every writer that got frames, once per loop iteration."""

    __slots__ = ("_dirty", "_scheduled")

    def __init__(self) -> None:
        self._dirty: list[ConnectionWriter] = []
        self._scheduled = False

    def mark(self, writer: ConnectionWriter) -> None:
        self._dirty.append(writer)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        self._scheduled = False
        for writer in dirty:
            try:
                writer.flush()
            except Exception:
                # One broken transport must not strand the writers after it (their dirty
                # flag would stay set and nothing would ever flush them again).
                writer.fail()


class ConnectionWriter:
    """The outgoing queue of one connection."""

    __slots__ = (
        "_flusher",
        "_transport",
        "closed",
        "dirty",
        "max_bytes",
        "on_overflow",
        "pending",
        "pending_bytes",
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

    def enqueue(self, frame: bytes) -> bool:
        """Queue one frame; False if the connection is closed or just overflowed."""
        if self.closed:
            return False
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
        if transport.get_write_buffer_size() + self.pending_bytes > self.max_bytes:
            self._overflow()
            return
        pending = self.pending
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        self.pending = []
        self.pending_bytes = 0
        transport.write(data)

    def close(self, *, flush: bool) -> None:
        """Stop accepting frames; write what is queued first if ``flush``."""
        if self.closed:
            return
        if flush:
            self.flush()
        self.closed = True
        self.pending = []
        self.pending_bytes = 0

    def fail(self) -> None:
        """The transport raised on write: drop the queue and close, as for an overflow."""
        metrics.TASK_FAILURES.labels("flush").inc()
        log_event(_log, "flush_failed", logging.ERROR, exc_info=True)
        self._overflow()

    def _overflow(self) -> None:
        self.closed = True
        self.pending = []
        self.pending_bytes = 0
        if self.on_overflow is not None:
            self.on_overflow()
