"""The reconnect delay schedule, driven by an injected random source: no sleeping."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roomcast.client.backoff import Backoff


def take(policy: Backoff, n: int, rand: float = 0.0) -> list[float]:
    return list(itertools.islice(policy.delays(lambda: rand), n))


def test_default_is_the_react_clients_schedule() -> None:
    # As the React client: 1 s x 1.5 per attempt, capped at 30 s.
    assert take(Backoff(), 11) == [
        1.0,
        1.5,
        2.25,
        3.375,
        5.0625,
        7.59375,
        11.390625,
        17.0859375,
        25.62890625,
        30.0,
        30.0,
    ]


def test_jitter_shortens_by_at_most_its_fraction() -> None:
    assert take(Backoff(jitter=0.2), 3, rand=0.5) == pytest.approx([0.9, 1.35, 2.025])
    assert take(Backoff(jitter=0.0), 3, rand=0.99) == [1.0, 1.5, 2.25]


def test_a_new_iterator_starts_over() -> None:
    policy = Backoff()
    first = policy.delays(lambda: 0.0)
    assert [next(first) for _ in range(4)][-1] == 3.375
    assert next(policy.delays(lambda: 0.0)) == 1.0


def test_initial_above_cap_is_capped() -> None:
    assert take(Backoff(initial=50, max_delay=30), 2) == [30.0, 30.0]


@pytest.mark.parametrize(
    "kwargs",
    [{"initial": -1}, {"max_delay": -1}, {"factor": 0.5}, {"jitter": 1.5}, {"jitter": -0.1}],
)
def test_invalid_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)


@given(
    seed=st.integers(),
    initial=st.floats(0.01, 10),
    factor=st.floats(1, 3),
    cap=st.floats(0.01, 60),
    jitter=st.floats(0, 1),
)
def test_delays_stay_between_the_jitter_floor_and_the_cap(
    seed: int, initial: float, factor: float, cap: float, jitter: float
) -> None:
    rng = random.Random(seed)
    policy = Backoff(initial=initial, factor=factor, max_delay=cap, jitter=jitter)
    delays = list(itertools.islice(policy.delays(rng.random), 30))
    bases = take(Backoff(initial=initial, factor=factor, max_delay=cap, jitter=0), 30)
    for delay, base in zip(delays, bases, strict=True):
        assert base * (1 - jitter) - 1e-9 <= delay <= base <= cap
    assert bases == sorted(bases)
