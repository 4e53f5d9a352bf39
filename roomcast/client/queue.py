"""The bounded FIFO of messages sent while the client is offline."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from enum import StrEnum
from typing import Generic, TypeVar

from roomcast.client.errors import QueueFull

T = TypeVar("T")


class Overflow(StrEnum):
    """What a full queue does with one more message."""

    #: Refuse the new message: ``push`` raises :class:`QueueFull`.
    RAISE = "raise"
    #: Make room by dropping the oldest message (its sender gets :class:`QueueFull`).
    DROP_OLDEST = "drop_oldest"


class OfflineQueue(Generic[T]):
    """A FIFO of at most ``limit`` items, with a chosen overflow policy.

    Items leave only by :meth:`popleft`, :meth:`remove` or :meth:`clear`, so whoever
    pops an item owns it: that is what makes each message go out at most once.
    """

    def __init__(
        self,
        limit: int = 1000,
        overflow: Overflow = Overflow.RAISE,
        on_drop: Callable[[T], None] | None = None,
    ) -> None:
        if limit < 0:
            raise ValueError("queue limit must not be negative")
        self.limit = limit
        self.overflow = Overflow(overflow)
        self._on_drop = on_drop
        self._items: deque[T] = deque()
        #: How many items ``DROP_OLDEST`` has dropped so far.
        self.dropped = 0

    def push(self, item: T) -> None:
        """Append ``item``.

        Raises:
            QueueFull: the queue holds ``limit`` items and the policy is ``RAISE``
                (or ``limit`` is 0: queueing disabled).
        """
        if len(self._items) >= self.limit:
            if self.overflow is Overflow.RAISE or not self._items:
                raise QueueFull(f"offline queue is full ({self.limit} messages)")
            oldest = self._items.popleft()
            self.dropped += 1
            if self._on_drop is not None:
                self._on_drop(oldest)
        self._items.append(item)

    def push_front(self, item: T) -> None:
        """Put back an item just popped and not sent; ignores the limit (it was counted)."""
        self._items.appendleft(item)

    def popleft(self) -> T:
        """Remove and return the oldest item; ``IndexError`` when empty."""
        return self._items.popleft()

    def remove(self, item: T) -> bool:
        """Take ``item`` out if it is still queued; whether it was."""
        try:
            self._items.remove(item)
        except ValueError:
            return False
        return True

    def clear(self) -> list[T]:
        """Remove and return every item, oldest first."""
        items = list(self._items)
        self._items.clear()
        return items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._items))
