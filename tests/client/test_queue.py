"""The bounded offline FIFO."""

from __future__ import annotations

import pytest

from roomcast.client.errors import QueueFull
from roomcast.client.queue import OfflineQueue, Overflow


def test_fifo_order() -> None:
    q: OfflineQueue[int] = OfflineQueue(10)
    for i in range(5):
        q.push(i)
    assert len(q) == 5
    assert [q.popleft() for _ in range(5)] == [0, 1, 2, 3, 4]
    with pytest.raises(IndexError):
        q.popleft()


def test_overflow_raises_and_keeps_what_was_queued() -> None:
    q: OfflineQueue[str] = OfflineQueue(2)
    q.push("a")
    q.push("b")
    with pytest.raises(QueueFull, match="2 messages"):
        q.push("c")
    assert q.clear() == ["a", "b"]
    assert len(q) == 0


def test_drop_oldest_makes_room_and_reports_the_dropped_item() -> None:
    dropped: list[str] = []
    q: OfflineQueue[str] = OfflineQueue(2, Overflow.DROP_OLDEST, on_drop=dropped.append)
    for item in "abcd":
        q.push(item)
    assert dropped == ["a", "b"]
    assert q.dropped == 2
    assert list(q) == ["c", "d"]


def test_limit_zero_disables_queueing_whatever_the_policy() -> None:
    for policy in Overflow:
        q: OfflineQueue[int] = OfflineQueue(0, policy)
        with pytest.raises(QueueFull):
            q.push(1)


def test_remove_and_push_front() -> None:
    q: OfflineQueue[str] = OfflineQueue(2)
    q.push("a")
    q.push("b")
    assert q.remove("a") is True
    assert q.remove("a") is False
    taken = q.popleft()
    q.push("c")
    q.push("d")
    q.push_front(taken)  # a popped item goes back first even when full
    assert list(q) == ["b", "c", "d"]


def test_negative_limit_is_refused() -> None:
    with pytest.raises(ValueError):
        OfflineQueue(-1)
