"""Group memberships in a SQLite file, through aiosqlite (queries run off the loop)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiosqlite

from roomcast.batching import Batcher
from roomcast.exceptions import StoreError
from roomcast.membership.base import Group
from roomcast.types import GroupId, UserId

# A group has one name (the room is called "Group: {name}"), so names live in
# their own table and a rename through any member reaches all of them.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS groups (
    group_id TEXT PRIMARY KEY,
    name     TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS memberships (
    user_id  TEXT NOT NULL,
    group_id TEXT NOT NULL REFERENCES groups (group_id),
    PRIMARY KEY (user_id, group_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS memberships_by_group ON memberships (group_id, user_id);
"""

# Another process (the CLI) may write the same file: wait for its lock rather than fail.
_BUSY_TIMEOUT_MS = 5000


def _check_openable(path: str) -> None:
    sqlite3.connect(path).close()


async def open_sqlite(path: str, schema: str, *, what: str) -> aiosqlite.Connection:
    """A connection to a SQLite file in WAL mode, with ``schema`` created if needed.

    Raises:
        StoreError: the file cannot be opened or the schema not created (``what`` names
            the store in the message).
    """
    try:
        # aiosqlite leaves its worker thread behind when connect() fails,
        # and that thread later trips over a closed loop: find out first.
        await asyncio.to_thread(_check_openable, path)
        db = await aiosqlite.connect(path, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {what} {path!r}: {exc}") from exc
    try:
        await db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute("PRAGMA foreign_keys = ON")
        await db.executescript(schema)
    except sqlite3.Error as exc:
        await db.close()
        raise StoreError(f"cannot open {what} {path!r}: {exc}") from exc
    return db


class SqliteMembershipStore:
    """A :class:`~roomcast.membership.base.MembershipStore` in one SQLite file.

    The file is opened in WAL mode, so readers never wait for a writer and the
    CLI can change memberships while a gateway is running. SQLite's BINARY
    collation orders ids by code point, like Python's ``sorted``.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        # One connection is shared by all coroutines: the lock keeps each
        # read-modify-write transaction whole.
        self._lock = asyncio.Lock()
        self._groups_batch: Batcher[UserId, list[Group]] = Batcher(
            self._groups_of_many, max_batch=500)

    async def open(self) -> None:
        """Open the file (creating it) and create the schema if needed."""
        if self._db is not None:
            return
        self._db = await open_sqlite(self.path, _SCHEMA, what="SQLite store")

    async def close(self) -> None:
        """Close the file; the store may be opened again."""
        db, self._db = self._db, None
        if db is not None:
            await db.close()

    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("SQLite membership store is not open")
        return self._db

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        db = self._conn()
        async with self._lock:
            try:
                # IMMEDIATE takes the write lock up front, so two writers never
                # deadlock upgrading from a read lock.
                await db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    await db.execute("ROLLBACK")
                    raise
                await db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite membership store failed: {exc}") from exc

    async def _fetch(self, sql: str, params: tuple[str, ...]) -> list[sqlite3.Row]:
        db = self._conn()
        # Under the lock, a read never sees another coroutine's half-done transaction.
        async with self._lock:
            try:
                return list(await db.execute_fetchall(sql, params))
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite membership store failed: {exc}") from exc

    async def groups_of(self, user_id: UserId) -> list[Group]:
        """The user's groups, ordered by group id (concurrent calls share one query)."""
        return await self._groups_batch.get(user_id)

    async def _groups_of_many(self, users: list[UserId]) -> list[list[Group] | BaseException]:
        unique = list(dict.fromkeys(users))
        marks = ", ".join("?" * len(unique))
        rows = await self._fetch(
            "SELECT m.user_id, g.group_id, g.name FROM memberships m JOIN groups g"
            f" USING (group_id) WHERE m.user_id IN ({marks}) ORDER BY g.group_id",
            tuple(unique),
        )
        found: dict[str, list[Group]] = {}
        for uid, gid, name in rows:
            found.setdefault(uid, []).append(Group(GroupId(gid), name))
        return [list(found.get(user, ())) for user in users]

    async def add(self, user_id: UserId, group_id: GroupId, name: str) -> bool:
        """Add a membership and set the group's name; True only if the membership is new."""
        async with self._transaction() as db:
            await db.execute(
                "INSERT INTO groups (group_id, name) VALUES (?, ?)"
                " ON CONFLICT (group_id) DO UPDATE SET name = excluded.name",
                (group_id, name),
            )
            cursor = await db.execute(
                "INSERT INTO memberships (user_id, group_id) VALUES (?, ?)"
                " ON CONFLICT DO NOTHING",
                (user_id, group_id),
            )
            return cursor.rowcount == 1

    async def remove(self, user_id: UserId, group_id: GroupId) -> Group | None:
        """Remove a membership; the removed group, or None if there was none."""
        async with self._transaction() as db:
            rows = list(
                await db.execute_fetchall(
                    "SELECT g.name FROM memberships m JOIN groups g USING (group_id)"
                    " WHERE m.user_id = ? AND m.group_id = ?",
                    (user_id, group_id),
                )
            )
            if not rows:
                return None
            await db.execute(
                "DELETE FROM memberships WHERE user_id = ? AND group_id = ?", (user_id, group_id)
            )
            return Group(group_id, rows[0][0])

    async def members(self, group_id: GroupId) -> list[UserId]:
        """The users of a group, ordered by user id."""
        rows = await self._fetch(
            "SELECT user_id FROM memberships WHERE group_id = ? ORDER BY user_id", (group_id,)
        )
        return [UserId(uid) for (uid,) in rows]
