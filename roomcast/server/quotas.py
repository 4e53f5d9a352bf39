"""Caps on the connections one user, or one client IP, holds on this instance."""

from __future__ import annotations

from collections import Counter


class Quota:
    """At most ``limit`` held per key (0: no limit); handshakes in progress count too."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held: Counter[str] = Counter()

    def acquire(self, key: str) -> bool:
        """Take one for ``key``; False (nothing taken) when it already holds ``limit``."""
        if self.limit and self._held[key] >= self.limit:
            return False
        self._held[key] += 1
        return True

    def release(self, key: str) -> None:
        self._held[key] -= 1
        if self._held[key] <= 0:
            del self._held[key]
