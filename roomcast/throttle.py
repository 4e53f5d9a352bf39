"""Per-connection flood control: over its rate a connection is paused, not answered.

Answering every over-limit frame with an error still cost a parse and a reply each, so a
few flooding connections stalled everyone. Instead the read loop asks :meth:`Throttle.pause`
before each frame and stops reading for that long (the socket's buffers fill and TCP
slows the sender down); a connection that stays over its limit is closed (1008).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class Throttle:
    """``rate`` frames/s with bursts of ``burst``; costly requests charge more."""

    __slots__ = ("_clock", "_last", "_since", "_tokens", "burst", "close_after", "rate")

    def __init__(self, rate: float, burst: int, *, close_after: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.close_after = close_after
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()
        #: When the connection went over its limit, until it calms down (half a burst back).
        self._since: float | None = None

    def charge(self, cost: float = 1.0) -> None:
        """Count a frame, or the work of an expensive request (the balance may go negative)."""
        self._refill(self._clock())
        self._tokens -= cost

    def pause(self) -> float | None:
        """Seconds to stop reading before the next frame (0: none); None: close it, it has
        been over its limit for longer than ``close_after``."""
        now = self._clock()
        self._refill(now)
        if self._tokens >= 1:
            if self._tokens >= self.burst / 2:
                self._since = None
            return 0.0
        if self._since is None:
            self._since = now
        elif now - self._since > self.close_after:
            return None
        return (1 - self._tokens) / self.rate

    async def admit(self) -> bool:
        """Wait until one more frame may be handled and charge it; False: close instead."""
        while True:
            wait = self.pause()
            if wait is None:
                return False
            if not wait:
                self.charge()
                return True
            # Woken early enough to close a connection that stays over its limit.
            await asyncio.sleep(min(wait, self.close_after))

    def _refill(self, now: float) -> None:
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
        self._last = now
