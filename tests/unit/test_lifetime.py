"""Token deadlines of closed connections must not keep the connections alive."""

from __future__ import annotations

import asyncio
import sys
import time

from roomcast.lifetime import Lifetimes
from tests.unit.fakes import make_conn


async def test_a_forgotten_connection_is_not_referenced_by_its_stale_deadlines() -> None:
    # A closed connection's deadlines stay in the heap until they are due (the token's
    # exp: maybe hours) or the heap is compacted; under churn that kept thousands of
    # closed connections, with everything they reference, in memory.
    lifetimes = Lifetimes(warning=60.0)
    conns = [make_conn(f"c{i}", f"u{i}")[0] for i in range(10)]
    for conn in conns:
        conn.expires_at = time.time() + 3600
    before = [sys.getrefcount(conn) for conn in conns]
    for conn in conns:
        lifetimes.track(conn)
    assert [sys.getrefcount(conn) for conn in conns] == [n + 1 for n in before]
    for conn in conns:
        lifetimes.forget(conn)
    assert [sys.getrefcount(conn) for conn in conns] == before
    lifetimes.close()


class RecordingCloser:
    """A :class:`~roomcast.hub.Closer` that notes its code in a shared list."""

    def __init__(self, name: str, closed: list[str], done: asyncio.Event) -> None:
        self.name, self.closed, self.done = name, closed, done

    def __call__(self, code: int, reason: str) -> None:
        self.closed.append(f"{self.name}:{code}")
        self.done.set()

    async def wait(self) -> None:
        await self.done.wait()


async def test_a_tracked_connection_is_still_closed_and_a_forgotten_one_is_not() -> None:
    lifetimes = Lifetimes(warning=60.0, leeway=0.0)
    closed: list[str] = []
    done = asyncio.Event()
    kept, _ = make_conn("kept", "u")
    gone, _ = make_conn("gone", "v")
    for conn in (gone, kept):
        conn.closer = RecordingCloser(conn.id, closed, done)
        conn.expires_at = time.time() + 0.05
        lifetimes.track(conn)
    lifetimes.forget(gone)
    await asyncio.wait_for(done.wait(), 10)
    assert closed == ["kept:3401"]
    lifetimes.close()


async def test_a_connection_is_warned_then_closed_with_one_deadline_held_at_a_time() -> None:
    # Each deadline in the heap is memory of every idle connection: the close is
    # scheduled when the warning goes out, not next to it from the start.
    lifetimes = Lifetimes(warning=60.0, leeway=0.0)
    closed: list[str] = []
    done = asyncio.Event()
    conn, transport = make_conn("warned", "u")
    conn.closer = RecordingCloser(conn.id, closed, done)
    idle = [make_conn(f"idle{i}", f"w{i}")[0] for i in range(5)]
    for other in idle:
        other.expires_at = time.time() + 3600
        lifetimes.track(other)
    assert len(lifetimes._heap) == len(idle)
    conn.expires_at = time.time() + 0.05  # within the warning lead: warned at once
    lifetimes.track(conn)
    await asyncio.wait_for(done.wait(), 10)
    assert closed == ["warned:3401"]
    assert sum(b"token_expiring" in w for w in transport.writes) == 1
    assert all(not other.writer.closed for other in idle)
    assert len(lifetimes._heap) == len(idle)
    lifetimes.close()


async def test_churn_leaves_at_most_one_stale_deadline_per_live_connection() -> None:
    # Stale entries wait for their deadline (the token's exp, maybe hours); each keeps
    # the closed connection's id. Under churn the heap is compacted, so it stays within
    # the live connections plus as many stale ones (and a fixed slack).
    lifetimes = Lifetimes(warning=60.0)
    live = [make_conn(f"c{i}", f"u{i}")[0] for i in range(2000)]
    for conn in live:
        conn.expires_at = time.time() + 3600
        lifetimes.track(conn)
    largest = 0
    for n in range(20_000):  # ten times the live connections close and are replaced
        slot = n % len(live)
        lifetimes.forget(live[slot])
        live[slot] = make_conn(f"r{n}", f"v{n}")[0]
        live[slot].expires_at = time.time() + 3600
        lifetimes.track(live[slot])
        largest = max(largest, len(lifetimes._heap))
    assert largest <= 2 * len(live) + 1025
    lifetimes.close()
