"""A bounded window of recently delivered publications: pure, no I/O.

roomcast's Redis broker never re-sends a publication itself, but a copy can still
arrive twice: another publisher (an older roomcast, a Go instance, a Redis client set up
to retry) may re-send a PUBLISH whose reply was lost while Redis stalled. Each
instance therefore remembers the publications it delivered lately, by publisher and
message id, and drops a second copy. The window is bounded both by count and by age,
so memory stays flat whatever the traffic; a copy arriving after the window has moved
on is delivered again (documented in docs/protocol.md).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Final

#: Defaults: a resend comes within seconds (one command timeout), far inside both bounds.
CAPACITY: Final = 65_536
MAX_AGE: Final = 60.0


class RecentWindow:
    """Keys seen in the last ``max_age`` seconds, at most ``capacity`` of them.

    Args:
        capacity: how many keys are kept at most (the oldest is forgotten first).
        max_age: seconds after which a key is forgotten.
    """

    def __init__(self, capacity: int = CAPACITY, max_age: float = MAX_AGE) -> None:
        if capacity < 1 or max_age <= 0:
            raise ValueError("capacity and max_age must be positive")
        self.capacity = capacity
        self.max_age = max_age
        # Insertion order is time order: expiry pops from the front only.
        self._seen: OrderedDict[Hashable, float] = OrderedDict()
        self._now = float("-inf")

    def __len__(self) -> int:
        return len(self._seen)

    def seen(self, key: Hashable, now: float) -> bool:
        """True if ``key`` is in the window (a repeat); otherwise record it and say False.

        ``now`` is a monotonic clock reading; one that goes backwards counts as the
        latest reading, so the window never holds keys out of time order.
        """
        self._now = now = max(now, self._now)
        horizon = now - self.max_age
        seen = self._seen
        while seen:
            oldest, at = next(iter(seen.items()))
            if at > horizon:
                break
            del seen[oldest]
        if key in seen:
            return True
        seen[key] = now
        if len(seen) > self.capacity:
            seen.popitem(last=False)
        return False
