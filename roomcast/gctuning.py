"""Garbage collector settings for a long-running server holding many live connections."""

from __future__ import annotations

import gc

#: Allocations between collections of the youngest generation (CPython's default: 700).
#: A handshake allocates hundreds of objects, nearly all freed by reference counting;
#: at 700 a connect storm spent 7% of its instructions in the collector, at 10,000 2%
#: (callgrind, 1,000 connections). The young generation then holds at most a few MB.
YOUNG_THRESHOLD = 10_000


def settle() -> None:
    """Once the server is up: collect, then leave what start-up built (modules, the app,
    settings) out of every later collection.

    A full collection walks every tracked object; without this, each one during a
    connect storm walked the start-up heap again (a third of the collector's work).
    """
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, oldest)
