"""The collector settles once the server is up: start-up objects frozen, young gen larger."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from roomcast import gctuning


@pytest.fixture
def restored() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_settle_freezes_what_exists_and_keeps_collecting_new_cycles(restored: None) -> None:
    gctuning.settle()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == gctuning.YOUNG_THRESHOLD

    class Node:
        other: object = None

    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle made after start-up is still collected
    del a, b
    assert gc.collect() >= 2
