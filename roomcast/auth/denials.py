"""Who may not connect right now: users logged out everywhere, and sticky kicks.

- **Revocation** ("log out everywhere"): every token of the user issued (``iat``) at or
  before the revocation is refused, at the handshake and at refresh, until it would
  have expired anyway; the entry is kept ``ROOMCAST_REVOCATION_TTL`` seconds. A token
  without ``iat`` cannot prove it is newer and is refused too.
- **Kick with a duration**: the user's, or one token's, handshakes are refused until
  the ban ends (the React client reconnects after any close, so a kick only sticks
  this way).

With Redis every instance, and a restarted one, reads the same entries; without it
they are kept in the SQLite file of the membership store (a restarted instance honours
them), else in the memory of the one instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import aiosqlite
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from roomcast.auth.claims import Claims
from roomcast.batching import Batcher
from roomcast.broker.pool import lean_pool
from roomcast.broker.slots import CONTROL_TAG, pinned_pool
from roomcast.exceptions import StoreError
from roomcast.membership.sqlite import open_sqlite

BanScope = Literal["user", "token"]


@dataclass(frozen=True, slots=True)
class Denied:
    """Why a token may not be used now."""

    #: ``revoked`` (get a new token) or ``kicked`` (wait ``retry_after`` seconds).
    reason: str
    retry_after: float | None = None


def judge(
    claims: Claims,
    revoked_at: float | None,
    banned_until: float | None,
    now: float,
) -> Denied | None:
    """The verdict on ``claims`` given the user's revocation and the latest ban."""
    if revoked_at is not None and (claims.issued_at is None or claims.issued_at <= revoked_at):
        return Denied("revoked")
    if banned_until is not None and banned_until > now:
        return Denied("kicked", retry_after=banned_until - now)
    return None


class Denials(Protocol):
    """Revocations and bans, shared by every instance that shares the store."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def revoke(self, user_id: str, at: float, ttl: float) -> None:
        """Refuse the user's tokens issued at or before ``at``, for ``ttl`` seconds."""

    async def ban(self, scope: BanScope, key: str, until: float) -> None:
        """Refuse handshakes of a user or of one token id until ``until``."""

    async def check(self, claims: Claims) -> Denied | None:
        """The reason ``claims`` may not be used now, or None.

        Raises:
            StoreError: the store cannot be read.
        """


class MemoryDenials:
    """One instance's denials, in memory (lost at restart)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._revoked: dict[str, tuple[float, float]] = {}  # user -> (at, kept until)
        self._bans: dict[tuple[str, str], float] = {}

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def revoke(self, user_id: str, at: float, ttl: float) -> None:
        self._revoked[user_id] = (at, self._clock() + ttl)

    async def ban(self, scope: BanScope, key: str, until: float) -> None:
        self._bans[(scope, key)] = until

    async def check(self, claims: Claims) -> Denied | None:
        now = self._clock()
        self._expire(now)
        revoked = self._revoked.get(claims.user_id)
        bans = [self._bans.get(("user", claims.user_id)),
                self._bans.get(("token", claims.token_id))]
        until = max((b for b in bans if b is not None), default=None)
        return judge(claims, revoked[0] if revoked else None, until, now)

    def _expire(self, now: float) -> None:
        for user in [u for u, (_, kept) in self._revoked.items() if kept <= now]:
            del self._revoked[user]
        for key in [k for k, until in self._bans.items() if until <= now]:
            del self._bans[key]


class RedisDenials:
    """Denials in Redis, each key expiring on its own.

    Keys (``prefix`` defaults to ``roomcast:``): ``revoked:{user_id}`` (the revocation
    time), ``banned:user:{user_id}`` and ``banned:token:{token_id}`` (the ban's end),
    all Unix seconds as strings. A handshake reads the three with one ``MGET``, shared
    with the handshakes that check meanwhile (one round trip per batch, never a cache).
    On a Redis Cluster (``cluster``) the keys carry one hash tag, so that ``MGET`` is legal.
    """

    def __init__(self, url: str, prefix: str = "roomcast:",
                 clock: Callable[[], float] = time.time, *, cluster: bool = False) -> None:
        self.url = url
        self.prefix = CONTROL_TAG + prefix if cluster else prefix
        self._cluster = cluster
        self._clock = clock
        self._redis: aioredis.Redis | None = None
        self._batch: Batcher[Claims, Denied | None] = Batcher(self._check_many)

    async def open(self) -> None:
        options: dict[str, Any] = {"decode_responses": True, "socket_timeout": 5.0,
                                   "socket_connect_timeout": 2.0}
        if self._cluster:
            self._redis = aioredis.Redis.from_pool(pinned_pool(self.url, **options))
        else:
            # Checks are batched: a few connections serve a storm (the rest queue).
            self._redis = aioredis.Redis.from_pool(
                lean_pool(self.url, max_connections=16, timeout=5.0, **options))

    async def close(self) -> None:
        client, self._redis = self._redis, None
        if client is not None:
            await client.aclose()

    def _client(self) -> aioredis.Redis:
        if self._redis is None:
            raise StoreError("denial store is not open")
        return self._redis

    async def revoke(self, user_id: str, at: float, ttl: float) -> None:
        key = f"{self.prefix}revoked:{user_id}"
        try:
            await self._client().set(key, repr(at), px=max(1, int(ttl * 1000)))
        except (RedisError, OSError) as exc:
            raise StoreError(f"cannot store the revocation: {exc}") from exc

    async def ban(self, scope: BanScope, key: str, until: float) -> None:
        name = f"{self.prefix}banned:{scope}:{key}"
        try:
            await self._client().set(name, repr(until), pxat=int(until * 1000) + 1)
        except (RedisError, OSError) as exc:
            raise StoreError(f"cannot store the ban: {exc}") from exc

    async def check(self, claims: Claims) -> Denied | None:
        return await self._batch.get(claims)

    async def _check_many(self, many: list[Claims]) -> list[Denied | BaseException | None]:
        p = self.prefix
        keys = []
        for claims in many:
            keys += [f"{p}revoked:{claims.user_id}", f"{p}banned:user:{claims.user_id}",
                     f"{p}banned:token:{claims.token_id}"]
        try:
            values = await self._client().mget(keys)
        except (RedisError, OSError) as exc:
            raise StoreError(f"denial store unavailable: {exc}") from exc
        now = self._clock()
        out: list[Denied | BaseException | None] = []
        for i, claims in enumerate(many):
            revoked, user_ban, token_ban = values[3 * i : 3 * i + 3]
            bans = [b for b in (_number(user_ban), _number(token_ban)) if b is not None]
            out.append(judge(claims, _number(revoked), max(bans, default=None), now))
        return out


def _number(raw: object) -> float | None:
    try:
        return float(raw) if isinstance(raw, str) else None
    except ValueError:
        return None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS denials (
    key   TEXT PRIMARY KEY,
    value REAL NOT NULL,
    until REAL NOT NULL
) WITHOUT ROWID;
"""


class SqliteDenials:
    """Denials in a SQLite file (the membership store's), for one instance without Redis.

    Rows are keyed as in Redis (``revoked:{user_id}``, ``banned:{scope}:{key}``) and
    carry the time they stop counting; expired rows are deleted as they are written.

    A handshake is checked against a copy of the rows in memory, not in SQLite's thread
    (that hop was a tenth of a connect storm's CPU). The copy is this instance's writes
    plus the file as read when it last changed: every check looks at SQLite's
    transaction counter in the file's wal-index (a read of 48 bytes), and a commit by
    another process (or by the membership store sharing the file) reloads the copy
    before the answer.
    """

    def __init__(self, path: str, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        #: key -> (value, until), as of ``_seen``.
        self._rows: dict[str, tuple[float, float]] = {}
        self._seen: object = None
        self._shm: int | None = None
        self._reload: asyncio.Task[None] | None = None
        self._turn_state: object = None

    async def open(self) -> None:
        self._db = await open_sqlite(self.path, _SCHEMA, what="the denial store")
        await self._load()

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await db.close()
        shm, self._shm = self._shm, None
        if shm is not None:
            os.close(shm)

    def _state(self) -> object:
        """What changes whenever anyone commits to the file: in WAL mode the header of
        the -shm wal-index counts transactions (``iChange``, ``mxFrame``, salts), read
        with one ``pread`` (the file stays while our connection is open); otherwise the
        file's stat. A file's mtime alone is too coarse (a clock tick) to tell two
        writes apart."""
        if self._shm is None:
            with contextlib.suppress(OSError):
                self._shm = os.open(self.path + "-shm", os.O_RDONLY)
        if self._shm is not None:
            with contextlib.suppress(OSError):
                return os.pread(self._shm, 48, 0)
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    async def _load(self) -> None:
        if self._db is None:
            raise StoreError("denial store is not open")
        seen = self._state()  # before reading: a write after it is seen at the next check
        try:
            async with self._lock, self._db.execute(
                "SELECT key, value, until FROM denials WHERE until > ?", (self._clock(),)
            ) as cursor:
                rows = await cursor.fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"denial store unavailable: {exc}") from exc
        self._rows = {str(k): (float(v), float(u)) for k, v, u in rows}
        self._seen = seen

    def _state_now(self) -> object:
        """:meth:`_state`, read once per loop turn: the checks of one turn run at the
        same moment as far as any writer can tell, so they share the read."""
        if self._turn_state is None:
            self._turn_state = self._state()
            asyncio.get_running_loop().call_soon(self._end_turn)
        return self._turn_state

    def _end_turn(self) -> None:
        self._turn_state = None

    async def _fresh(self) -> None:
        """Reload the copy if the file changed since it was read (one reload at a time,
        shared by the checks that find the change)."""
        while self._state_now() != self._seen:
            self._turn_state = None  # after the reload, look again
            if self._reload is None or self._reload.done():
                self._reload = asyncio.get_running_loop().create_task(self._load())
            await asyncio.shield(self._reload)

    async def _put(self, key: str, value: float, until: float) -> None:
        if self._db is None:
            raise StoreError("denial store is not open")
        async with self._lock:
            try:
                await self._db.execute("DELETE FROM denials WHERE until <= ?", (self._clock(),))
                await self._db.execute(
                    "INSERT INTO denials (key, value, until) VALUES (?, ?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
                    "until = excluded.until",
                    (key, value, until),
                )
            except sqlite3.Error as exc:
                raise StoreError(f"cannot store the denial: {exc}") from exc
            self._rows[key] = (value, until)
        # Ours and anything written meanwhile; should the read fail, the next check
        # finds the file changed and reads it.
        with contextlib.suppress(StoreError):
            await self._load()

    async def revoke(self, user_id: str, at: float, ttl: float) -> None:
        await self._put(f"revoked:{user_id}", at, self._clock() + ttl)

    async def ban(self, scope: BanScope, key: str, until: float) -> None:
        await self._put(f"banned:{scope}:{key}", until, until)

    async def check(self, claims: Claims) -> Denied | None:
        if self._db is None:
            raise StoreError("denial store is not open")
        await self._fresh()
        now = self._clock()
        found = {}
        for key in (f"revoked:{claims.user_id}", f"banned:user:{claims.user_id}",
                    f"banned:token:{claims.token_id}"):
            row = self._rows.get(key)
            if row is not None and row[1] > now:
                found[key] = row[0]
        revoked = found.pop(f"revoked:{claims.user_id}", None)
        return judge(claims, revoked, max(found.values(), default=None), now)
