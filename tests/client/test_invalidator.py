"""Cache invalidation keys, as the React client's WebSocketProvider computes them."""

from __future__ import annotations

from collections import Counter, OrderedDict
from typing import Any

import pytest

from roomcast.client import Invalidator, Message, keys_for
from roomcast.client.invalidator import CacheKey, invalidate


def msg(type: str, data: dict[str, Any] | None = None, room: str | None = None) -> Message:
    env: dict[str, Any] = {"type": type, "data": data or {}}
    if room is not None:
        env["room"] = room
    return Message.from_dict(env)


@pytest.mark.parametrize(
    ("message", "keys"),
    [
        (msg("user_profile_update", {"user_id": "u1"}), [("users",), ("auth", "current-user")]),
        (msg("group_membership_change", {"user_id": "u1"}), [("groups",), ("users",)]),
        (
            msg("room_update", {"action": "member_joined"}, room="group:ops"),
            [("chat", "threads", "group:ops")],
        ),
        (
            msg("message", {"text": "x"}, room="thread:42"),
            [("chat", "messages", "42"), ("chat", "threads")],
        ),
        (msg("notification", {"type": "new_message"}), [("chat", "threads")]),
        (msg("notification", {"type": "task_update"}), [("scheduler",)]),
        (msg("presence", {"userId": "u2", "status": "online"}), [("chat", "contacts")]),
    ],
)
def test_keys_per_message_type(message: Message, keys: list[CacheKey]) -> None:
    assert keys_for(message) == keys


@pytest.mark.parametrize(
    "message",
    [
        msg("user_profile_update", {}),  # React checks data.user_id
        msg("group_membership_change", {}),
        msg("room_update", {}),  # no room
        msg("message", {"text": "x"}, room="group:ops"),  # not a thread
        msg("notification", {"type": "other"}),
        msg("system_notification", {"message": "hi"}),
        msg("backend_status", {}),
    ],
)
def test_messages_that_invalidate_nothing(message: Message) -> None:
    assert keys_for(message) == []


def test_prefix_invalidation_over_a_dict() -> None:
    cache: dict[Any, str] = {
        ("users",): "list",
        ("users", "u1"): "one",
        ("users-management",): "other",
        ("auth", "current-user"): "me",
        ("auth", "settings"): "keep",
        ("groups",): "keep",
        "users": "string key, not a tuple: kept",
    }
    inv = Invalidator(cache)
    assert inv(msg("user_profile_update", {"user_id": "u1"})) == [
        ("users",),
        ("auth", "current-user"),
    ]
    assert cache == {
        ("users-management",): "other",
        ("auth", "settings"): "keep",
        ("groups",): "keep",
        "users": "string key, not a tuple: kept",
    }


def test_any_mutable_mapping_and_a_callback() -> None:
    cache: OrderedDict[Any, int] = OrderedDict(
        {("chat", "messages", "42", "page", 1): 1, ("chat", "messages", "43"): 2}
    )
    seen: list[CacheKey] = []
    Invalidator(cache, on_invalidate=seen.append)(msg("message", {}, room="thread:42"))
    assert list(cache) == [("chat", "messages", "43")]
    assert seen == [("chat", "messages", "42"), ("chat", "threads")]


def test_callback_alone_without_a_cache() -> None:
    seen: list[CacheKey] = []
    Invalidator(on_invalidate=seen.append)(msg("group_membership_change", {"user_id": "u"}))
    assert seen == [("groups",), ("users",)]


def test_invalidate_returns_the_deleted_keys() -> None:
    cache = {("a", "b"): 1, ("a",): 2, ("b",): 3}
    assert Counter(invalidate(cache, ("a",))) == Counter([("a",), ("a", "b")])
    assert cache == {("b",): 3}
