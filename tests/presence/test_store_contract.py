"""The PresenceStore contract, run against the memory store and a real redis-server.

Time is a fake clock the test moves: both stores take "now" from it (the Redis
scripts never read Redis's own clock), so expiry is tested without sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from roomcast.presence.base import Change, Entry, PresenceStore
from roomcast.presence.memory import MemoryPresenceStore
from roomcast.presence.redis import RedisPresenceStore
from roomcast.types import ConnId, UserId
from tests.helpers.redis_server import RedisServer

TTL = 10.0
START = 1_700_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1000)


StoreFactory = Callable[[], PresenceStore]


@pytest.fixture(params=["memory", "redis"])
async def stores(
    request: pytest.FixtureRequest, tmp_path: Any
) -> AsyncIterator[tuple[StoreFactory, Clock, str]]:
    """A factory of stores sharing one backend (two instances), their clock and kind."""
    clock = Clock()
    made: list[PresenceStore] = []
    if request.param == "memory":
        shared = MemoryPresenceStore(clock=clock)

        def factory() -> PresenceStore:
            return shared
    else:
        server = request.getfixturevalue("redis_server")
        assert isinstance(server, RedisServer)

        def factory() -> PresenceStore:
            store = RedisPresenceStore(server.url, ttl=TTL, clock=clock)
            made.append(store)
            return store

    yield factory, clock, request.param
    for store in made:
        await store.close()


U, V = UserId("u1"), UserId("u2")
A, B, C = ConnId("a"), ConnId("b"), ConnId("c")


def entry(status: str = "online", clock: Clock | None = None, **metadata: Any) -> Entry:
    return Entry(status, metadata, clock.now if clock else START)


async def test_first_connection_makes_the_user_online_the_second_changes_nothing(
    stores: tuple[StoreFactory, Clock, str],
) -> None:
    make, clock, _ = stores
    store = make()
    first = await store.add(U, A, entry(clock=clock))
    assert (first.before.status, first.after.status, first.visible) == ("offline", "online", True)
    second = await store.add(U, B, entry(clock=clock))
    assert not second.visible and second.after.connections == 2
    assert second.version > first.version
    assert (await store.presence([U, V]))[V].status == "offline"


async def test_the_best_status_wins_with_its_metadata(
    stores: tuple[StoreFactory, Clock, str],
) -> None:
    make, clock, _ = stores
    store = make()
    await store.add(U, A, entry(clock=clock))
    clock.advance(1)
    away = await store.add(U, B, entry("away", clock, note="lunch"))
    assert not away.visible  # A is still online
    clock.advance(1)
    change = await store.add(U, A, entry("away", clock, note="meeting"))
    assert change.visible and change.after.status == "away"
    assert change.after.metadata == {"note": "meeting"}  # the latest of the best status
    invisible = await store.add(U, A, entry("offline", clock))
    # A goes invisible: B's "away" shows, with B's metadata.
    assert invisible.visible and invisible.after.metadata == {"note": "lunch"}
    shown = (await store.presence([U]))[U]
    assert (shown.status, shown.metadata, shown.connections) == ("away", {"note": "lunch"}, 2)


async def test_removing_without_grace_reports_offline_with_last_seen(
    stores: tuple[StoreFactory, Clock, str],
) -> None:
    make, clock, _ = stores
    store = make()
    await store.add(U, A, entry(clock=clock))
    await store.add(U, B, entry(clock=clock))
    one = await store.remove(U, A, grace=0)
    assert one is not None and not one.visible
    clock.advance(3)
    last = await store.remove(U, B, grace=0)
    assert last is not None and last.visible and last.after.status == "offline"
    wire = (await store.presence([U]))[U].wire()
    assert wire["userId"] == "u1" and wire["status"] == "offline"
    assert wire["lastSeen"] == wire["timestamp"] is not None
    assert await store.remove(U, B, grace=0) is None  # already gone


async def test_a_storm_of_adds_and_removes_reports_each_its_own_change(
    stores: tuple[StoreFactory, Clock, str],
) -> None:
    # Redis sends the changes asked meanwhile in one pipeline: each caller must still get
    # the answer about its own user, in the order the changes were asked.
    make, clock, _ = stores
    store = make()
    users = [UserId(f"storm{i}") for i in range(40)]
    added = await asyncio.gather(*(store.add(u, A, entry(clock=clock)) for u in users))
    assert [c.after.user_id for c in added] == users
    assert all(c.visible and c.after.status == "online" for c in added)
    # Each user's second connection leaves while its first is being removed too.
    await asyncio.gather(*(store.add(u, B, entry("away", clock)) for u in users))
    removed = await asyncio.gather(*(
        store.remove(u, conn, grace=0) for u in users for conn in (A, B)))
    assert [c.after.user_id if c else None for c in removed] == [u for u in users for _ in "AB"]
    assert [c.after.status if c else None for c in removed] == ["away", "offline"] * len(users)
    shown = await store.presence(users)
    assert [shown[u].status for u in users] == ["offline"] * len(users)


async def test_a_grace_period_delays_offline_and_a_reconnect_cancels_it(
    stores: tuple[StoreFactory, Clock, str],
) -> None:
    make, clock, _ = stores
    store = make()
    await store.add(U, A, entry(clock=clock))
    await store.add(V, C, entry(clock=clock))
    assert await store.remove(U, A, grace=5) is None
    assert await store.remove(V, C, grace=5) is None
    assert (await store.presence([U]))[U].status == "online"  # still, during the grace
    clock.advance(2)
    assert await store.sweep() == []
    await store.add(U, B, entry(clock=clock))  # U reconnected; V did not
    clock.advance(4)
    changes = {c.after.user_id: c for c in await store.sweep()}
    assert changes[V].visible and changes[V].after.status == "offline"
    assert not changes[U].visible and changes[U].after.connections == 1
    assert await store.sweep() == []


async def test_entries_not_refreshed_expire_and_one_instance_reports_each(
    redis_server: RedisServer,
) -> None:
    # Redis only: in memory, live connections die with their (single) instance.
    clock = Clock()
    crashed = RedisPresenceStore(redis_server.url, ttl=TTL, clock=clock)
    survivor = RedisPresenceStore(redis_server.url, ttl=TTL, clock=clock)
    await crashed.add(U, A, entry(clock=clock))
    await survivor.add(V, B, entry(clock=clock))
    for _ in range(3):
        clock.advance(TTL / 2)
        assert await survivor.refresh([(V, B)]) == []  # the crashed one refreshes nothing
    assert (await survivor.presence([U]))[U].status == "offline"  # reads skip expired
    reports = await crashed.sweep() + await survivor.sweep()
    assert [(c.after.user_id, c.after.status, c.visible) for c in reports] == [
        ("u1", "offline", True)
    ]
    assert (await survivor.presence([V]))[V].status == "online"
    await crashed.close()
    await survivor.close()


async def test_refresh_reports_lost_entries_and_never_extends_a_leaving_one(
    stores: tuple[StoreFactory, Clock, str],
) -> None:
    make, clock, _ = stores
    store = make()
    await store.add(U, A, entry(clock=clock))
    assert await store.refresh([(U, A), (V, C)]) == [(V, C)]
    assert await store.remove(U, A, grace=2) is None
    await store.refresh([(U, A)])  # a refresh racing the close
    clock.advance(3)
    changes = await store.sweep()
    assert [c.after.status for c in changes] == ["offline"]


async def test_stats_count_users_and_connections(
    stores: tuple[StoreFactory, Clock, str],
) -> None:
    make, clock, _ = stores
    store = make()
    await store.add(U, A, entry(clock=clock))
    await store.add(U, B, entry(clock=clock))
    await store.add(V, C, entry(clock=clock))
    stats = await store.presence_stats()
    assert (stats.users, stats.connections) == (2, 3)
    await store.remove(V, C, grace=0)
    stats = await store.presence_stats()
    assert (stats.users, stats.connections) == (1, 2)


def test_change_visibility_ignores_the_timestamp() -> None:
    from roomcast.presence.base import aggregate

    before = aggregate(U, [Entry("online", {}, 1)])
    after = aggregate(U, [Entry("online", {}, 2)])
    assert not Change(before, after, 1).visible


async def test_changes_say_whether_any_instance_follows_the_user(
    stores: tuple[StoreFactory, Clock, str], request: pytest.FixtureRequest,
) -> None:
    make, clock, kind = stores
    if kind == "memory":  # one instance: it knows its subscribers itself
        store = make()
        await store.follow([U], False)
        assert (await store.add(U, A, entry(clock=clock))).followed
        return
    server = request.getfixturevalue("redis_server")
    here = RedisPresenceStore(server.url, ttl=TTL, clock=clock, server_id="here")
    there = RedisPresenceStore(server.url, ttl=TTL, clock=clock, server_id="there")
    try:
        assert not (await here.add(U, A, entry(clock=clock))).followed  # nobody follows
        await there.follow([U], True)
        await here.follow([U, V], True)
        assert (await here.add(U, B, entry("away", clock))).followed
        await here.follow([U], False)  # "there" still follows
        left = await here.remove(U, B, grace=0)
        assert left is not None and left.followed
        await there.follow([U], False)
        gone = await here.remove(U, A, grace=0)
        assert gone is not None and gone.visible and not gone.followed
        # Swept entries (an instance died) report it too.
        await here.add(V, C, entry(clock=clock))
        await here.remove(V, C, grace=1.0)
        clock.advance(2)
        [swept] = await there.sweep()
        assert swept.after.user_id == V and swept.followed  # "here" follows V
    finally:
        await here.close()
        await there.close()


async def test_memory_keeps_last_seen_a_week_and_for_the_latest_users_only() -> None:
    # Redis keeps each lastSeen a week by its own key expiry; the memory store, whose
    # map is all it has, also bounds how many users it remembers (oldest dropped first).
    clock = Clock()
    store = MemoryPresenceStore(clock=clock, max_seen=3)
    users = [UserId(f"gone{i}") for i in range(5)]
    for user in users:
        await store.add(user, ConnId(f"c-{user}"), entry(clock=clock))
        await store.remove(user, ConnId(f"c-{user}"), grace=0)
        clock.advance(1)
    # The first one comes back and leaves again: now the latest.
    await store.add(users[0], A, entry(clock=clock))
    await store.remove(users[0], A, grace=0)
    await store.sweep()

    async def seen() -> dict[str, int]:
        return {u: p.updated for u, p in (await store.presence(users)).items() if p.updated}

    assert set(await seen()) == {"gone3", "gone4", "gone0"}
    clock.advance(7 * 24 * 3600 - 2)  # gone3 left 7 days ago now, gone4 a second later
    await store.sweep()
    assert set(await seen()) == {"gone4", "gone0"}
