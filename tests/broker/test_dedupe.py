"""The recent-publication window: repeats inside it are caught, memory stays bounded."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roomcast.broker.dedupe import RecentWindow


def test_a_repeat_inside_the_window_is_seen() -> None:
    window = RecentWindow(capacity=10, max_age=5.0)
    assert window.seen("a", 0.0) is False
    assert window.seen("b", 1.0) is False
    assert window.seen("a", 4.9) is True
    assert window.seen("b", 4.9) is True


def test_a_repeat_after_max_age_is_new_again() -> None:
    window = RecentWindow(capacity=10, max_age=5.0)
    assert window.seen("a", 0.0) is False
    assert window.seen("a", 5.0) is False  # forgotten: delivered again
    assert window.seen("a", 5.1) is True


def test_the_oldest_key_is_forgotten_past_capacity() -> None:
    window = RecentWindow(capacity=3, max_age=100.0)
    for i, key in enumerate("abcd"):
        assert window.seen(key, float(i)) is False
    assert len(window) == 3
    assert window.seen("a", 4.0) is False  # pushed out by "d"
    assert window.seen("d", 4.0) is True


def test_a_clock_going_backwards_keeps_time_order() -> None:
    window = RecentWindow(capacity=10, max_age=5.0)
    window.seen("a", 10.0)
    window.seen("b", 3.0)  # read as 10.0
    assert window.seen("b", 14.9) is True
    assert window.seen("a", 15.0) is False and window.seen("b", 15.0) is False


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RecentWindow(capacity=0)
    with pytest.raises(ValueError):
        RecentWindow(max_age=0.0)


@given(
    capacity=st.integers(1, 8),
    max_age=st.floats(0.5, 10.0),
    events=st.lists(st.tuples(st.integers(0, 12), st.floats(0.0, 3.0)), max_size=200),
)
def test_matches_a_naive_model(capacity: int, max_age: float,
                               events: list[tuple[int, float]]) -> None:
    """Same answers as a list of (key, time) pairs trimmed by age, then by count."""
    window = RecentWindow(capacity=capacity, max_age=max_age)
    model: list[tuple[int, float]] = []
    now = 0.0
    for key, step in events:
        now += step
        model = [(k, t) for k, t in model if t > now - max_age]
        expected = any(k == key for k, _ in model)
        if not expected:
            model = [*model, (key, now)][-capacity:]
        assert window.seen(key, now) is expected
        assert len(window) == len(model) <= capacity
