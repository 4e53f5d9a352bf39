"""One contract for every MembershipStore, run over SQLite, Redis and PostgreSQL.

As in centrifuge's shared broker tests, a factory fixture builds stores of the
backend under test; every test below runs once per backend, against real
servers (a ``redis-server`` and a PostgreSQL database made for the test).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from roomcast.exceptions import StoreError
from roomcast.membership import MembershipStore
from roomcast.membership.base import Group
from roomcast.membership.postgres import PostgresMembershipStore
from roomcast.membership.redis import RedisMembershipStore
from roomcast.membership.sqlite import SqliteMembershipStore
from roomcast.types import GroupId, UserId
from tests.helpers.redis_server import RedisServer, free_port

StoreFactory = Callable[[], MembershipStore]
BACKENDS = ["sqlite", "redis", "postgres"]

U1, U2 = UserId("user-1"), UserId("user-2")
G1, G2 = GroupId("g-1"), GroupId("g-2")


@pytest.fixture(params=BACKENDS)
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Builds unopened stores that all see the same data of one backend."""
    backend: str = request.param
    if backend == "sqlite":
        path = str(tmp_path / "memberships.db")
        return lambda: SqliteMembershipStore(path)
    if backend == "redis":
        server: RedisServer = request.getfixturevalue("redis_server_module")
        # The server is shared by the module: a prefix per test keeps tests apart.
        prefix = f"roomcast-test:{request.node.name}:"
        return lambda: RedisMembershipStore(server.url, prefix=prefix)
    dsn: str = request.getfixturevalue("postgres_dsn")
    return lambda: PostgresMembershipStore(dsn)


@pytest.fixture
async def store(store_factory: StoreFactory) -> AsyncIterator[MembershipStore]:
    s = store_factory()
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def test_add_is_new_only_once(store: MembershipStore) -> None:
    assert await store.add(U1, G1, "Alpha") is True
    assert await store.add(U1, G1, "Alpha") is False
    assert await store.groups_of(U1) == [Group(G1, "Alpha")]
    assert await store.members(G1) == [U1]


async def test_add_existing_renames_the_group(store: MembershipStore) -> None:
    await store.add(U1, G1, "Old name")
    assert await store.add(U1, G1, "New name") is False
    assert await store.groups_of(U1) == [Group(G1, "New name")]


async def test_rename_reaches_every_member(store: MembershipStore) -> None:
    await store.add(U1, G1, "Old name")
    assert await store.add(U2, G1, "New name") is True
    assert await store.groups_of(U1) == [Group(G1, "New name")]
    assert await store.groups_of(U2) == [Group(G1, "New name")]


async def test_remove_returns_the_group_once(store: MembershipStore) -> None:
    await store.add(U1, G1, "Alpha")
    await store.add(U1, G2, "Beta")
    assert await store.remove(U1, G1) == Group(G1, "Alpha")
    assert await store.remove(U1, G1) is None
    assert await store.groups_of(U1) == [Group(G2, "Beta")]
    assert await store.members(G1) == []


async def test_remove_unknown_is_none(store: MembershipStore) -> None:
    assert await store.remove(U1, G1) is None
    await store.add(U2, G1, "Alpha")
    assert await store.remove(U1, G1) is None
    assert await store.members(G1) == [U2]


async def test_unknown_user_and_group_are_empty(store: MembershipStore) -> None:
    assert await store.groups_of(UserId("nobody")) == []
    assert await store.members(GroupId("nothing")) == []


async def test_groups_and_members_ordered_by_id(store: MembershipStore) -> None:
    # Code point order, as Python sorts: digits < upper < lower < non-ASCII.
    group_ids = ["g-b", "g-a", "G-z", "g-10", "g-9", "g-ä", "g-é", "g-日本"]
    user_ids = ["u-b", "U-a", "u-10", "u-9", "u-ö"]
    for gid in random.sample(group_ids, len(group_ids)):
        await store.add(U1, GroupId(gid), f"name of {gid}")
    for uid in random.sample(user_ids, len(user_ids)):
        await store.add(UserId(uid), G1, "Alpha")
    assert [g.id for g in await store.groups_of(U1)] == sorted(group_ids)
    assert await store.members(G1) == sorted(user_ids)


async def test_unicode_and_awkward_names(store: MembershipStore) -> None:
    names = {
        GroupId("g-1"): "Équipe 🚀 日本語",
        GroupId("g-2"): "Robert'); DROP TABLE groups;--",
        GroupId("g-3"): 'quotes " and \\ backslash\nnewline',
        GroupId("g-4"): "",
    }
    for gid, name in names.items():
        await store.add(U1, gid, name)
    assert await store.groups_of(U1) == [Group(gid, name) for gid, name in sorted(names.items())]
    user, group = UserId("ユーザー-✓"), GroupId("グループ-✓")
    await store.add(user, group, "Alpha")
    assert await store.groups_of(user) == [Group(group, "Alpha")]
    assert await store.members(group) == [user]


async def test_users_are_isolated(store: MembershipStore) -> None:
    await store.add(U1, G1, "Alpha")
    await store.add(U2, G2, "Beta")
    assert await store.groups_of(U1) == [Group(G1, "Alpha")]
    assert await store.groups_of(U2) == [Group(G2, "Beta")]
    assert await store.remove(U2, G1) is None
    assert await store.groups_of(U1) == [Group(G1, "Alpha")]


async def test_many_users_concurrently(store: MembershipStore) -> None:
    users = [UserId(f"user-{i:04d}") for i in range(200)]
    results = await asyncio.gather(*(store.add(u, G1, "Crowd") for u in users))
    assert all(results)
    await asyncio.gather(*(store.add(u, GroupId(f"own-{u}"), "Own") for u in users))
    assert await store.members(G1) == users
    assert await store.groups_of(users[7]) == [
        Group(G1, "Crowd"), Group(GroupId(f"own-{users[7]}"), "Own")
    ]


async def test_concurrent_adds_of_one_membership_report_new_once(store: MembershipStore) -> None:
    results = await asyncio.gather(*(store.add(U1, G1, f"name {i}") for i in range(20)))
    assert results.count(True) == 1
    assert len(await store.groups_of(U1)) == 1


async def test_concurrent_removes_return_the_group_once(store: MembershipStore) -> None:
    await store.add(U1, G1, "Alpha")
    results = await asyncio.gather(*(store.remove(U1, G1) for _ in range(20)))
    assert [r for r in results if r is not None] == [Group(G1, "Alpha")]


async def test_data_persists_across_close_and_open(store_factory: StoreFactory) -> None:
    first = store_factory()
    await first.open()
    await first.add(U1, G1, "Alpha")
    await first.add(U2, G1, "Alpha")
    await first.close()
    second = store_factory()
    await second.open()
    try:
        assert await second.groups_of(U1) == [Group(G1, "Alpha")]
        assert await second.members(G1) == [U1, U2]
    finally:
        await second.close()


async def test_reopen_after_close(store_factory: StoreFactory) -> None:
    s = store_factory()
    await s.open()
    await s.add(U1, G1, "Alpha")
    await s.close()
    await s.open()
    try:
        assert await s.groups_of(U1) == [Group(G1, "Alpha")]
    finally:
        await s.close()


async def test_use_before_open_raises_store_error(store_factory: StoreFactory) -> None:
    s = store_factory()
    with pytest.raises(StoreError):
        await s.groups_of(U1)
    with pytest.raises(StoreError):
        await s.add(U1, G1, "Alpha")


@pytest.mark.parametrize("backend", BACKENDS)
async def test_unreachable_backend_raises_store_error(backend: str, tmp_path: Path) -> None:
    unreachable: MembershipStore
    if backend == "sqlite":
        unreachable = SqliteMembershipStore(str(tmp_path / "missing-dir" / "m.db"))
    elif backend == "redis":
        unreachable = RedisMembershipStore(f"redis://127.0.0.1:{free_port()}/0")
    else:
        unreachable = PostgresMembershipStore(f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    if backend != "redis":
        with pytest.raises(StoreError):
            await unreachable.open()
        return
    # Redis may come up after the gateway: open() succeeds, every call fails until then.
    await unreachable.open()
    try:
        with pytest.raises(StoreError):
            await unreachable.groups_of(U1)
        with pytest.raises(StoreError):
            await unreachable.add(U1, G1, "Alpha")
    finally:
        await unreachable.close()


@pytest.mark.redis
async def test_redis_store_opened_before_redis_works_once_it_starts(
        redis_server: RedisServer) -> None:
    port = redis_server.port
    redis_server.stop()
    s = RedisMembershipStore(redis_server.url)
    await s.open()
    try:
        with pytest.raises(StoreError):
            await s.groups_of(U1)
        redis_server.start()  # the same port
        assert redis_server.port == port
        assert await s.add(U1, G1, "Alpha") is True
        assert await s.groups_of(U1) == [Group(G1, "Alpha")]
    finally:
        await s.close()


@pytest.mark.redis
async def test_redis_outage_raises_store_error_then_recovers(redis_server: RedisServer) -> None:
    s = RedisMembershipStore(redis_server.url)
    await s.open()
    try:
        await s.add(U1, G1, "Alpha")
        redis_server.stop()
        with pytest.raises(StoreError):
            await s.groups_of(U1)
        with pytest.raises(StoreError):
            await s.add(U1, G2, "Beta")
        redis_server.start()  # same port, empty (nothing is saved)
        assert await s.add(U1, G2, "Beta") is True
        assert await s.groups_of(U1) == [Group(G2, "Beta")]
    finally:
        await s.close()
