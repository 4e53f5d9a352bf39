"""Group memberships in PostgreSQL, through an asyncpg pool."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from roomcast.exceptions import StoreError
from roomcast.membership.base import Group
from roomcast.types import GroupId, UserId

_T = TypeVar("_T")

# A group has one name (the room is called "Group: {name}"), so names live in
# their own table and a rename through any member reaches all of them.
# Ids are compared with COLLATE "C": code point order, as Python's sorted and
# the other stores, whatever the database's locale.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS roomcast_groups (
    group_id TEXT COLLATE "C" PRIMARY KEY,
    name     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS roomcast_memberships (
    user_id  TEXT COLLATE "C" NOT NULL,
    group_id TEXT COLLATE "C" NOT NULL REFERENCES roomcast_groups (group_id),
    PRIMARY KEY (user_id, group_id)
);
CREATE INDEX IF NOT EXISTS roomcast_memberships_by_group
    ON roomcast_memberships (group_id, user_id);
"""

# Serializes concurrent schema creation by several instances starting at once
# (CREATE TABLE IF NOT EXISTS can still collide on the catalog).
_SCHEMA_LOCK_KEY = 0x726F6F6D63617374  # "roomcast"

_ADD = """
WITH g AS (
    INSERT INTO roomcast_groups (group_id, name) VALUES ($2, $3)
    ON CONFLICT (group_id) DO UPDATE SET name = EXCLUDED.name
    RETURNING group_id
)
INSERT INTO roomcast_memberships (user_id, group_id) SELECT $1, group_id FROM g
ON CONFLICT DO NOTHING
RETURNING 1
"""

_REMOVE = """
WITH d AS (
    DELETE FROM roomcast_memberships WHERE user_id = $1 AND group_id = $2 RETURNING group_id
)
SELECT g.name FROM d JOIN roomcast_groups g USING (group_id)
"""

_CONNECT_TIMEOUT = 5.0
_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class PostgresMembershipStore:
    """A :class:`~roomcast.membership.base.MembershipStore` in PostgreSQL.

    Tables ``roomcast_groups`` and ``roomcast_memberships`` are created in the
    first schema of the connection's ``search_path`` by :meth:`open`.

    Args:
        dsn: ``postgres://`` or ``postgresql://`` URL.
    """

    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.dsn = dsn
        self._min_size = min_size
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        """Create the pool and the schema if needed."""
        if self._pool is not None:
            return
        try:
            pool = await asyncpg.create_pool(
                self.dsn, min_size=self._min_size, max_size=self._max_size,
                timeout=_CONNECT_TIMEOUT,
            )
        except _ERRORS as exc:
            raise StoreError(f"PostgreSQL membership store unreachable: {exc}") from exc
        except ValueError as exc:  # asyncpg's complaint about a malformed DSN
            raise StoreError(f"invalid PostgreSQL DSN: {exc}") from exc
        try:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK_KEY)
                await conn.execute(_SCHEMA)
        except _ERRORS as exc:
            await pool.close()
            raise StoreError(f"cannot create the PostgreSQL schema: {exc}") from exc
        self._pool = pool

    async def close(self) -> None:
        """Close the pool; the store may be opened again."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _call(self, op: Callable[[asyncpg.Pool], Awaitable[_T]]) -> _T:
        if self._pool is None:
            raise StoreError("PostgreSQL membership store is not open")
        try:
            return await op(self._pool)
        except _ERRORS as exc:
            raise StoreError(f"PostgreSQL membership store failed: {exc}") from exc

    async def groups_of(self, user_id: UserId) -> list[Group]:
        """The user's groups, ordered by group id."""
        rows = await self._call(
            lambda p: p.fetch(
                "SELECT g.group_id, g.name FROM roomcast_memberships m"
                " JOIN roomcast_groups g USING (group_id)"
                " WHERE m.user_id = $1 ORDER BY g.group_id",
                user_id,
            )
        )
        return [Group(GroupId(r["group_id"]), r["name"]) for r in rows]

    async def add(self, user_id: UserId, group_id: GroupId, name: str) -> bool:
        """Add a membership and set the group's name; True only if the membership is new."""
        inserted: int | None = await self._call(
            lambda p: p.fetchval(_ADD, user_id, group_id, name)
        )
        return inserted == 1

    async def remove(self, user_id: UserId, group_id: GroupId) -> Group | None:
        """Remove a membership; the removed group, or None if there was none."""
        name: str | None = await self._call(lambda p: p.fetchval(_REMOVE, user_id, group_id))
        return None if name is None else Group(group_id, name)

    async def members(self, group_id: GroupId) -> list[UserId]:
        """The users of a group, ordered by user id."""
        rows = await self._call(
            lambda p: p.fetch(
                "SELECT user_id FROM roomcast_memberships WHERE group_id = $1 ORDER BY user_id",
                group_id,
            )
        )
        return [UserId(r["user_id"]) for r in rows]
