"""Token lifetime of live connections: a warning before ``exp``, a close after it.

A connection is told ``expires_in`` seconds ahead (``ROOMCAST_EXPIRY_WARNING``) with a
``system`` message of action ``token_expiring``; unless a refresh moved its expiry
meanwhile, it is closed with 3401 once ``exp`` plus the leeway has passed. The client
reconnects with a fresh token (the React client reconnects after any close).

Timers live on the event loop (one pair per connection); nothing polls.
"""

from __future__ import annotations

import asyncio
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
        self._timers: dict[ConnId, tuple[asyncio.TimerHandle | None, asyncio.TimerHandle]] = {}

    def track(self, conn: LocalConnection) -> None:
        """(Re)schedule ``conn`` for its current ``expires_at``; replaces earlier timers."""
        self.forget(conn)
        if not self.enabled or not math.isfinite(conn.expires_at):
            return
        loop = asyncio.get_running_loop()
        left = conn.expires_at - self._clock()
        warn = None
        if self.warning > 0:
            # A token shorter-lived than the warning lead is warned about at once.
            warn = loop.call_later(max(0.0, left - self.warning), self._warn, conn)
        close = loop.call_later(max(0.0, left + self.leeway), self._expire, conn)
        self._timers[conn.id] = (warn, close)

    def forget(self, conn: LocalConnection) -> None:
        """Cancel ``conn``'s timers (it closed, or a refresh reschedules it)."""
        timers = self._timers.pop(conn.id, None)
        if timers is not None:
            for handle in timers:
                if handle is not None:
                    handle.cancel()

    def close(self) -> None:
        for warn, close in self._timers.values():
            if warn is not None:
                warn.cancel()
            close.cancel()
        self._timers.clear()

    def _warn(self, conn: LocalConnection) -> None:
        left = max(0, math.ceil(conn.expires_at - self._clock()))
        conn.send(messages.encode(messages.token_expiring(left, conn.expires_at)))

    def _expire(self, conn: LocalConnection) -> None:
        self._timers.pop(conn.id, None)
        metrics.TOKEN_CLOSES.labels("expired").inc()
        log_event(_log, "token_expired", conn=conn.id, user=conn.user_id)
        conn.close(CloseCode.TOKEN_EXPIRED, "token expired")
