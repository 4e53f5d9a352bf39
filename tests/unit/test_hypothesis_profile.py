"""The Hypothesis profile of tests/conftest.py: a slow machine cannot fail a property."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def test_no_deadline_and_no_speed_health_check_in_every_profile() -> None:
    for profile in (settings.default, settings.get_profile("dev"), settings.get_profile("ci")):
        assert profile is not None and profile.deadline is None
        assert HealthCheck.too_slow in profile.suppress_health_check


def test_ci_profile_is_repeatable() -> None:
    ci = settings.get_profile("ci")
    assert ci.derandomize
    assert ci.database is None


@settings(max_examples=3)
@given(st.integers())
def test_a_slow_example_is_no_failure(number: int) -> None:
    # Stands for a machine too busy to run an example in Hypothesis' default 200 ms deadline;
    # a per-test @settings keeps the profile's deadline=None.
    time.sleep(0.3)
    assert isinstance(number, int)
