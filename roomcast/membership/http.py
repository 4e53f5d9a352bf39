"""Group memberships read from the application over HTTP (read-only).

In a go-falcon deployment the memberships live in the application's database
and its tokens carry no ``groups`` claim. This provider asks the application:
``GET`` the URL template with ``{user_id}`` filled in (URL-quoted), for example
``https://app.internal/api/websocket/users/{user_id}/groups``, answered with
JSON in any of these shapes::

    {"groups": [{"id": "g1", "name": "Fleet"}, ...]}
    [{"id": "g1", "name": "Fleet"}, ...]            (also group_id / group_name)
    ["g1", "g2"]                                    (names default to the ids)

A 404 means "no groups". Answers are cached for ``cache_ttl`` seconds per user.

When the application cannot be reached (timeout, connection refused, a 5xx or
an unreadable answer) the user connects with the personal room only: the
handshake never waits longer than ``timeout`` nor fails because of the app.
The failure is logged once per outage and counted, and the read is retried in
the background (1 s, doubling, at most 30 s) while the user has a live
connection; ``on_recovered`` then moves those connections into their groups.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final
from urllib.parse import quote

import aiohttp
import orjson

from roomcast import metrics
from roomcast.exceptions import ConfigError, StoreError, StoreReadOnly
from roomcast.logs import log_event
from roomcast.membership.base import Group
from roomcast.types import GroupId, UserId

_log = logging.getLogger("roomcast.membership")

#: Largest answer read from the application.
MAX_ANSWER: Final = 1 << 20
#: Most groups taken from one answer.
MAX_GROUPS: Final = 1000
RETRY_FIRST: Final = 1.0
RETRY_MAX: Final = 30.0


class AppUnavailable(StoreError):
    """The application did not answer usably; the reason is for the log."""


class HttpMembershipProvider:
    """A :class:`~roomcast.membership.base.MembershipStore` backed by the application's API."""

    def __init__(self, template: str, *, cache_ttl: float = 30.0, timeout: float = 2.0,
                 authorization: str | None = None) -> None:
        if "{user_id}" not in template:
            raise ConfigError("membership URL template needs {user_id}, e.g. "
                              "https://app.internal/users/{user_id}/groups")
        self.template = template
        self.cache_ttl = cache_ttl
        self.timeout = timeout
        self._authorization = authorization
        self._session: aiohttp.ClientSession | None = None
        self._cache: dict[UserId, tuple[float, list[Group]]] = {}
        self._retries: dict[UserId, asyncio.Task[None]] = {}
        self._down = False
        #: Called when a retry got the groups of a user who connected without them.
        self.on_recovered: Callable[[UserId, list[Group]], Awaitable[None]] | None = None
        #: Whether the user still has a live connection here (retries stop otherwise).
        self.wanted: Callable[[UserId], bool] = lambda user_id: True

    async def open(self) -> None:
        headers = {"Accept": "application/json", "User-Agent": "roomcast"}
        if self._authorization:
            headers["Authorization"] = self._authorization
        self._session = aiohttp.ClientSession(
            headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout),
            raise_for_status=False,
        )

    async def close(self) -> None:
        for task in self._retries.values():
            task.cancel()
        for task in list(self._retries.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()

    # -- reads -----------------------------------------------------------------

    async def groups_of(self, user_id: UserId) -> list[Group]:
        """The user's groups; the personal room only (``[]``) while the app is down."""
        cached = self._cache.get(user_id)
        if cached is not None and cached[0] > time.monotonic():
            metrics.MEMBERSHIP_FETCHES.labels("cached").inc()
            return cached[1]
        if self._down:
            # Known down: no handshake waits for a timeout; a retry asks soon.
            metrics.MEMBERSHIP_FETCHES.labels("skipped").inc()
            self._retry_later(user_id)
            return []
        try:
            return await self.fetch(user_id)
        except AppUnavailable:
            self._retry_later(user_id)
            return []

    async def fetch(self, user_id: UserId) -> list[Group]:
        """Ask the application now (no cache); raises :class:`AppUnavailable`."""
        try:
            groups = await self._get(user_id)
        except AppUnavailable as exc:
            metrics.MEMBERSHIP_FETCHES.labels("error").inc()
            if not self._down:  # one line per outage, not one per handshake
                log_event(_log, "membership_app_unavailable", logging.WARNING,
                          error=str(exc), policy="personal room only, retrying")
            self._down = True
            raise
        metrics.MEMBERSHIP_FETCHES.labels("ok").inc()
        if self._down:
            log_event(_log, "membership_app_available")
            self._down = False
        self._cache[user_id] = (time.monotonic() + self.cache_ttl, groups)
        if len(self._cache) > 10_000:
            self._prune()
        return groups

    def forget(self, user_id: UserId) -> None:
        """Drop the cached answer (the membership changed elsewhere)."""
        self._cache.pop(user_id, None)

    async def _get(self, user_id: UserId) -> list[Group]:
        if self._session is None:
            raise StoreError("HTTP membership provider is not open")
        url = self.template.replace("{user_id}", quote(user_id, safe=""))
        try:
            async with self._session.get(url, allow_redirects=False) as response:
                if response.status == 404:
                    return []
                if response.status != 200:
                    raise AppUnavailable(f"the application answered HTTP {response.status}")
                body = await response.content.read(MAX_ANSWER + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AppUnavailable(f"{type(exc).__name__}: {exc}") from None
        if len(body) > MAX_ANSWER:
            raise AppUnavailable(f"answer larger than {MAX_ANSWER} bytes")
        try:
            return parse_groups(orjson.loads(body))
        except (orjson.JSONDecodeError, ValueError) as exc:
            raise AppUnavailable(f"unreadable answer: {exc}") from None

    def _prune(self) -> None:
        now = time.monotonic()
        for user_id in [u for u, (expires, _) in self._cache.items() if expires <= now]:
            del self._cache[user_id]

    # -- retries -------------------------------------------------------------------

    def _retry_later(self, user_id: UserId) -> None:
        if user_id in self._retries:
            return
        task = asyncio.get_running_loop().create_task(self._retry(user_id))
        self._retries[user_id] = task
        task.add_done_callback(lambda _: self._retries.pop(user_id, None))

    async def _retry(self, user_id: UserId) -> None:
        delay = RETRY_FIRST
        while True:
            await asyncio.sleep(delay)
            if not self.wanted(user_id):
                return
            try:
                groups = await self.fetch(user_id)
            except AppUnavailable:
                delay = min(delay * 2, RETRY_MAX)
                continue
            if self.on_recovered is not None:
                try:
                    await self.on_recovered(user_id, groups)
                except Exception:
                    log_event(_log, "membership_recover_failed", logging.ERROR,
                              user=user_id, exc_info=True)
            return

    # -- writes: the application owns the memberships ------------------------------

    async def add(self, user_id: UserId, group_id: GroupId, name: str) -> bool:
        raise StoreReadOnly("memberships come from the application; change them there")

    async def remove(self, user_id: UserId, group_id: GroupId) -> Group | None:
        raise StoreReadOnly("memberships come from the application; change them there")

    async def members(self, group_id: GroupId) -> list[UserId]:
        """Not known here (the application is asked per user): always empty."""
        return []


def parse_groups(body: Any) -> list[Group]:
    """The groups of an answer in one of the documented shapes, ordered by id.

    Raises:
        ValueError: anything else.
    """
    items = body.get("groups") if isinstance(body, dict) else body
    if items is None:
        items = []
    if not isinstance(items, list):
        raise ValueError("expected a list of groups")
    groups: dict[GroupId, Group] = {}
    for item in items[:MAX_GROUPS]:
        if isinstance(item, str | int) and not isinstance(item, bool):
            gid, name = str(item), None
        elif isinstance(item, dict):
            raw = item.get("id", item.get("group_id"))
            if not isinstance(raw, str | int) or isinstance(raw, bool):
                raise ValueError("a group without an id")
            gid = str(raw)
            name = item.get("name", item.get("group_name"))
        else:
            raise ValueError("a group must be an id or an object")
        if not 0 < len(gid) <= 128:
            raise ValueError("a group id must have 1 to 128 characters")
        groups[GroupId(gid)] = Group(GroupId(gid), name if isinstance(name, str) and name else gid)
    return [groups[k] for k in sorted(groups)]
