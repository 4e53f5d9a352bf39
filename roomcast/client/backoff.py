"""Reconnect delays: exponential backoff with jitter, as a pure generator.

As the Go gateway's React client: wait 1 s x 1.5 per attempt, capped at 30 s. Jitter spreads
the reconnects of many clients after a server restart, so they don't all arrive at once.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

RandomSource = Callable[[], float]
"""Returns a float in ``[0, 1)``, like :func:`random.random`."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long to wait before each reconnect attempt.

    The n-th delay (from 0) is ``min(max_delay, initial * factor**n)``, shortened by up
    to ``jitter`` of itself at random, so it never exceeds ``max_delay``.
    """

    #: The first delay, in seconds.
    initial: float = 1.0
    #: Each delay is this many times the previous one.
    factor: float = 1.5
    #: No delay exceeds this, in seconds.
    max_delay: float = 30.0
    #: Fraction (0..1) of a delay that may be taken off at random.
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.initial < 0 or self.max_delay < 0:
            raise ValueError("backoff delays must not be negative")
        if self.factor < 1:
            raise ValueError("backoff factor must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("backoff jitter must be between 0 and 1")

    def delays(self, random: RandomSource = _random.random) -> Iterator[float]:
        """An endless iterator of delays; start a new one after a successful connection."""
        base = min(self.initial, self.max_delay)
        while True:
            yield base * (1.0 - self.jitter * random())
            base = min(base * self.factor, self.max_delay)
