"""Token lifetime of live connections: a warning before ``exp``, a close after it.

A connection is told ``expires_in`` seconds ahead (``ROOMCAST_EXPIRY_WARNING``) with a
``system`` message of action ``token_expiring``; unless a refresh moved its expiry
meanwhile, it is closed with 3401 once ``exp`` plus the leeway has passed. The client
reconnects with a fresh token (the React client reconnects after any close).

One loop timer serves every connection (a heap of deadlines): a timer handle per
connection cost ~1.2 KiB of each idle connection's memory; nothing polls. A connection
has one deadline in the heap at a time: its warning, then (pushed when the warning is
sent) its close.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import time
from collections.abc import Callable

from roomcast import metrics
from roomcast.hub import LocalConnection
from roomcast.logs import log_event
from roomcast.protocol import messages
from roomcast.protocol.codes import CloseCode
from roomcast.types import ConnId

_log = logging.getLogger("roomcast.lifetime")


class Lifetimes:
    """Schedules the expiry warning and close of every local connection."""

    def __init__(
        self,
        *,
        enabled: bool = True,
        warning: float = 60.0,
        leeway: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.enabled = enabled
        self.warning = warning
        self.leeway = leeway
        self._clock = clock
        #: (loop time, key, is the warning, connection id); entries of a connection
        #: forgotten or tracked again since stay until popped (skipped). The id, not the
        #: connection: a stale entry would keep a closed connection's whole object graph
        #: (its aiohttp request, protocol and buffers) alive until then.
        self._heap: list[tuple[float, int, bool, ConnId]] = []
        #: The key of each tracked connection's current deadline, and the connection.
        self._tracked: dict[ConnId, tuple[int, LocalConnection]] = {}
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def track(self, conn: LocalConnection) -> None:
        """(Re)schedule ``conn`` for its current ``expires_at``; replaces earlier deadlines."""
        self.forget(conn)
        if not self.enabled or not math.isfinite(conn.expires_at):
            return
        loop = asyncio.get_running_loop()
        if self.warning > 0:
            # A token shorter-lived than the warning lead is warned about at once.
            left = conn.expires_at - self._clock()
            self._push(loop.time() + max(0.0, left - self.warning), True, conn)
        else:
            self._push_close(loop.time(), conn)
        self._arm(loop)

    def forget(self, conn: LocalConnection) -> None:
        """Drop ``conn``'s deadlines (it closed, or a refresh reschedules it)."""
        if self._tracked.pop(conn.id, None) is not None and \
                len(self._heap) > 2 * len(self._tracked) + 1024:
            # Churn leaves stale entries until their deadline (maybe hours): compact.
            # At most one stale entry per live one (~0.25 KiB each, with the closed
            # connection's id): at four, a 30-minute soak at 10,000 connections and
            # 1,000 closes a minute grew ~7 MiB without ever compacting.
            self._heap = [e for e in self._heap if self._current(e[3], e[1]) is not None]
            heapq.heapify(self._heap)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = None, math.inf
        self._heap.clear()
        self._tracked.clear()

    def _push(self, when: float, warn: bool, conn: LocalConnection) -> None:
        """Make ``when`` the connection's deadline (its earlier entry, if any, is stale)."""
        key = next(self._order)
        self._tracked[conn.id] = (key, conn)
        heapq.heappush(self._heap, (when, key, warn, conn.id))

    def _push_close(self, now: float, conn: LocalConnection) -> None:
        """The connection's close deadline: its token's ``exp`` plus the leeway."""
        left = conn.expires_at - self._clock()
        self._push(now + max(0.0, left + self.leeway), False, conn)

    def _current(self, conn_id: ConnId, key: int) -> LocalConnection | None:
        """The connection, if ``key`` is still its current deadline's."""
        tracked = self._tracked.get(conn_id)
        return tracked[1] if tracked is not None and tracked[0] == key else None

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop timer at the earliest deadline."""
        if not self._heap:
            return
        when = self._heap[0][0]
        if self._timer is not None:
            if self._timer_at <= when:
                return
            self._timer.cancel()
        self._timer, self._timer_at = loop.call_at(when, self._fire), when

    def _fire(self) -> None:
        self._timer, self._timer_at = None, math.inf
        loop = asyncio.get_running_loop()
        now = loop.time()
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, key, warn, conn_id = heapq.heappop(heap)
            conn = self._current(conn_id, key)
            if conn is None:
                continue  # forgotten, or tracked again with a new expiry
            if warn:
                self._warn(conn)
                if self._current(conn_id, key) is conn:  # not forgotten by the send
                    self._push_close(now, conn)  # due in this pass if exp has passed
            else:
                self._expire(conn)
        self._arm(loop)

    def _warn(self, conn: LocalConnection) -> None:
        left = max(0, math.ceil(conn.expires_at - self._clock()))
        conn.send(messages.encode(messages.token_expiring(left, conn.expires_at)))

    def _expire(self, conn: LocalConnection) -> None:
        self._tracked.pop(conn.id, None)
        metrics.TOKEN_CLOSES.labels("expired").inc()
        log_event(_log, "token_expired", conn=conn.id, user=conn.user_id)
        conn.close(CloseCode.TOKEN_EXPIRED, "token expired")
