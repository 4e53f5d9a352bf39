"""Turn server messages into cache invalidations, as the React client does.

The React client (``WebSocketProvider.handleQueryCacheUpdate``) invalidates TanStack
Query keys on these messages; :class:`Invalidator` produces the same keys, as tuples:

=========================================  =============================================
message                                    keys invalidated
=========================================  =============================================
``user_profile_update`` (``data.user_id``)  ``("users",)``, ``("auth", "current-user")``
``group_membership_change`` (``user_id``)   ``("groups",)``, ``("users",)``
``room_update`` with a room                 ``("chat", "threads", room)``
``message`` in room ``thread:T``            ``("chat", "messages", T)``, ``("chat", "threads")``
``notification`` ``data.type=new_message``  ``("chat", "threads")``
``notification`` ``data.type=task_update``  ``("scheduler",)``
``presence`` with ``data.userId``           ``("chat", "contacts")``
=========================================  =============================================

Like TanStack's ``invalidateQueries``, a key is a prefix: ``("users",)`` also removes
``("users", "42")``. The React client patches the thread and contact caches in place;
a generic cache cannot, so those keys are invalidated instead.

When a room did not recover after a reconnect (:class:`~roomcast.client.Recovery`),
the messages it missed are unknown, so :func:`keys_for_room` invalidates every key a
message of that room could have made stale.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, MutableMapping
from typing import Any

from roomcast.client.message import Message
from roomcast.client.positions import Recovery

CacheKey = tuple[str, ...]
"""A cache key, or a prefix of keys, in TanStack Query's array form."""

USERS: CacheKey = ("users",)
CURRENT_USER: CacheKey = ("auth", "current-user")
GROUPS: CacheKey = ("groups",)
THREADS: CacheKey = ("chat", "threads")
CONTACTS: CacheKey = ("chat", "contacts")
SCHEDULER: CacheKey = ("scheduler",)
THREAD_PREFIX = "thread:"


def keys_for(message: Message) -> list[CacheKey]:
    """The cache keys (prefixes) that ``message`` makes stale, in the React client's order."""
    kind, data = message.type, message.data
    if kind == "user_profile_update" and data.get("user_id"):
        return [USERS, CURRENT_USER]
    if kind == "group_membership_change" and data.get("user_id"):
        return [GROUPS, USERS]
    if kind == "room_update" and message.room:
        return [(*THREADS, message.room)]
    if kind == "message" and message.room and message.room.startswith(THREAD_PREFIX):
        return [("chat", "messages", message.room[len(THREAD_PREFIX) :]), THREADS]
    if kind == "notification":
        return {"new_message": [THREADS], "task_update": [SCHEDULER]}.get(str(data.get("type")), [])
    if kind == "presence" and data.get("userId"):
        return [CONTACTS]
    return []


def keys_for_room(room: str) -> list[CacheKey]:
    """Every key (prefix) that some message in ``room`` could make stale.

    Any message type can be sent to any room (a user's, a group's), so this is the
    whole table above, plus the room's own thread messages for a ``thread:`` room.
    """
    keys = [USERS, CURRENT_USER, GROUPS, THREADS, CONTACTS, SCHEDULER]
    if room.startswith(THREAD_PREFIX):
        keys.insert(0, ("chat", "messages", room[len(THREAD_PREFIX) :]))
    return keys


def matches(key: Hashable, prefix: CacheKey) -> bool:
    """Whether cache ``key`` falls under ``prefix`` (tuple prefix, or equal)."""
    if isinstance(key, tuple):
        return key[: len(prefix)] == prefix
    return key == prefix


class Invalidator:
    """Removes stale entries from a mapping-like cache when messages arrive.

    Register it for every message: ``client.on("*", Invalidator(cache))``.

    Args:
        cache: any ``MutableMapping`` keyed by tuples (a dict, an LRU cache, ...).
        on_invalidate: called with each stale key prefix, for caches that are not
            mappings (or to refetch); called whether or not ``cache`` is given.
    """

    def __init__(
        self,
        cache: MutableMapping[Any, Any] | None = None,
        *,
        on_invalidate: Callable[[CacheKey], None] | None = None,
    ) -> None:
        self.cache = cache
        self.on_invalidate = on_invalidate

    def __call__(self, message: Message) -> list[CacheKey]:
        """Invalidate what ``message`` makes stale; the key prefixes it matched."""
        return self._drop(keys_for(message))

    def on_recovery(self, recovery: Recovery) -> list[CacheKey]:
        """Invalidate everything for a room that missed messages for good.

        Register it with ``client.on_recovery(invalidator.on_recovery)``. A recovered
        room needs nothing: its missed messages were replayed through ``__call__``.
        """
        return self._drop([] if recovery.recovered else keys_for_room(recovery.room))

    def _drop(self, prefixes: list[CacheKey]) -> list[CacheKey]:
        for prefix in prefixes:
            if self.cache is not None:
                invalidate(self.cache, prefix)
            if self.on_invalidate is not None:
                self.on_invalidate(prefix)
        return prefixes


def invalidate(cache: MutableMapping[Any, Any], prefix: CacheKey) -> list[Hashable]:
    """Delete every key of ``cache`` under ``prefix``; the keys deleted."""
    stale = [key for key in list(cache.keys()) if matches(key, prefix)]
    for key in stale:
        cache.pop(key, None)
    return stale
