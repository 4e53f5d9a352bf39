"""The SDK against a real gateway: connect, rooms, acks, server errors, handlers."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import pytest

from roomcast.client import (
    ClientClosed,
    ConnectionState,
    Invalidator,
    Message,
    ServerError,
)
from roomcast.client.invalidator import CacheKey
from tests.client.support import client_for, joined, next_matching
from tests.helpers.gateway import GatewayProcess


def uid() -> str:
    return uuid.uuid4().hex[:8]


async def test_connect_announces_ids_and_rooms(gateway: GatewayProcess) -> None:
    user, group = f"u-{uid()}", f"g-{uid()}"
    async with client_for(gateway, user, [group]) as client:
        connected = client.state  # a copy: mypy would keep client.state narrowed past the block
        assert connected is ConnectionState.CONNECTED
        assert client.user_id == user
        assert client.connection_id
        await joined(client, f"user:{user}", f"group:{group}")
        assert client.rooms == {f"user:{user}", f"group:{group}"}
        room = client.room(f"group:{group}")
        assert room is client.room(f"group:{group}")
        assert (room.type, room.display_name, room.member_count) == (
            "group",
            f"Group: {group}",
            1,
        )
        personal = client.personal_room()
        assert (personal.name, personal.type, personal.joined) == (f"user:{user}", "personal", True)
    assert client.state is ConnectionState.DISCONNECTED
    assert client.rooms == frozenset()
    assert not room.joined


async def test_cookie_authentication(gateway: GatewayProcess) -> None:
    from tests.helpers.tokens import make_token

    user = f"u-{uid()}"
    async with client_for(gateway, user, cookie=make_token(gateway.secret, user)) as client:
        assert client.user_id == user


async def test_send_returns_the_ack_and_the_room_gets_the_message(
    gateway: GatewayProcess,
) -> None:
    group = f"group:g-{uid()}"
    gid = group.removeprefix("group:")
    async with (
        client_for(gateway, f"a-{uid()}", [gid]) as alice,
        client_for(gateway, f"b-{uid()}", [gid]) as bob,
    ):
        await joined(alice, group)
        await joined(bob, group)
        inbox = bob.messages("message")
        ack = await alice.room(group).send({"text": "hello"})
        assert ack.type == "system"
        assert ack.data["action"] == "ack"
        assert ack.data["status"] == "ok"
        got = await next_matching(inbox, lambda m: m.data.get("text") == "hello")
        assert (got.room, got.from_) == (group, alice.connection_id)
        assert got.id == ack.data["message_id"]  # the server's fresh id, not the client's


async def test_direct_message_to_a_connection(gateway: GatewayProcess) -> None:
    gid = f"g-{uid()}"
    async with (
        client_for(gateway, f"a-{uid()}", [gid]) as alice,
        client_for(gateway, f"b-{uid()}", [gid]) as bob,
    ):
        await joined(alice, f"group:{gid}")
        await joined(bob, f"group:{gid}")
        inbox = bob.messages("custom_event")
        assert bob.connection_id is not None
        await alice.send("custom_event", {"n": 1}, to=bob.connection_id)
        got = await next_matching(inbox, lambda m: True)
        assert (dict(got.data), got.to, got.from_) == (
            {"n": 1},
            bob.connection_id,
            alice.connection_id,
        )


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"type": "message", "data": {"x": 1}, "room": "group:not-mine"}, "forbidden"),
        ({"type": "message", "data": {"x": 1}}, "invalid_field"),  # neither room nor to
        ({"type": "no_such_type"}, "unknown_type"),
        ({"type": "room_joined"}, "forbidden"),  # a server-only type
    ],
)
async def test_server_errors_surface_with_their_code(
    gateway: GatewayProcess, kwargs: dict[str, Any], code: str
) -> None:
    async with client_for(gateway, f"u-{uid()}") as client:
        with pytest.raises(ServerError) as err:
            await client.send(**kwargs)
        assert err.value.code == code
        assert err.value.temporary is False
        assert err.value.message
        # The connection stays usable after an error reply.
        assert (await client.ping()).data["action"] == "pong"


async def test_replies_of_each_kind(gateway: GatewayProcess) -> None:
    gid = f"g-{uid()}"
    async with client_for(gateway, f"u-{uid()}", [gid]) as client:
        await joined(client, f"group:{gid}")
        pong = await client.ping()
        assert (pong.type, pong.data["action"]) == ("system", "pong")
        presence = await client.send("presence")
        assert (presence.type, presence.data["status"]) == ("presence", "online")
        assert (await client.send("heartbeat")).type == "heartbeat"
        members = await client.members(f"group:{gid}")
        assert [m["connection_id"] for m in members] == [client.connection_id]
        assert await client.room(f"group:{gid}").members() == members


async def test_type_and_room_handlers_sync_async_and_failing(
    gateway: GatewayProcess, caplog: pytest.LogCaptureFixture
) -> None:
    gid1, gid2 = f"g-{uid()}", f"g-{uid()}"
    seen: list[tuple[str, Any]] = []
    done = asyncio.Event()

    def broken(message: Message) -> None:
        raise RuntimeError("handler bug")

    async def async_handler(message: Message) -> None:
        await asyncio.sleep(0)  # a real suspension inside the handler
        seen.append(("async", message.data.get("n")))

    def record(tag: str) -> Any:
        def handler(message: Message) -> None:
            if message.type == "message":  # room handlers also get room_joined
                seen.append((tag, message.data.get("n")))

        return handler

    def last(message: Message) -> None:
        if message.data.get("n") == "last":
            done.set()

    async with client_for(gateway, f"u-{uid()}", [gid1, gid2]) as client:
        await joined(client, f"group:{gid1}", f"group:{gid2}")
        client.on("message", broken)
        client.on("message", async_handler)
        remove = client.on("message", record("sync"))
        client.room(f"group:{gid1}").on_message(record("room1"))
        client.room(f"group:{gid2}").on_message(record("room2"))
        client.on("*", last)
        with caplog.at_level(logging.ERROR, logger="roomcast.client"):
            await client.room(f"group:{gid1}").send({"n": 1})
            remove()
            await client.room(f"group:{gid2}").send({"n": "last"})
            await done.wait()
    # Room handlers, then type handlers in registration order, then "*"; the broken
    # handler did not stop the others; the removed one saw only the first message.
    assert seen == [
        ("room1", 1),
        ("async", 1),
        ("sync", 1),
        ("room2", "last"),
        ("async", "last"),
    ]
    failures = [r for r in caplog.records if r.getMessage() == "handler_failed"]
    assert len(failures) == 2
    assert all(r.exc_info is not None for r in failures)


async def test_messages_stream_filters_by_type(gateway: GatewayProcess) -> None:
    gid = f"g-{uid()}"
    async with client_for(gateway, f"u-{uid()}", [gid]) as client:
        await joined(client, f"group:{gid}")
        only_events = client.messages("custom_event")
        everything = client.messages()
        await client.room(f"group:{gid}").send({"n": 1})
        await client.room(f"group:{gid}").send({"n": 2}, type="custom_event")
        first = await only_events.get()
        assert (first.type, dict(first.data)) == ("custom_event", {"n": 2})
        kinds = [(await everything.get()).type for _ in range(2)]
        assert kinds == ["message", "custom_event"]  # replies are not in the stream
    with pytest.raises(StopAsyncIteration):
        await everything.get()


async def test_state_callback_and_stream(gateway: GatewayProcess) -> None:
    seen: list[ConnectionState] = []
    client = client_for(gateway, f"u-{uid()}", on_state=seen.append)
    states = client.states()
    async with client:
        pass
    assert [s async for s in states] == [
        ConnectionState.CONNECTING,
        ConnectionState.CONNECTED,
        ConnectionState.DISCONNECTED,
    ]
    assert seen == [
        ConnectionState.CONNECTING,
        ConnectionState.CONNECTED,
        ConnectionState.DISCONNECTED,
    ]
    with pytest.raises(ClientClosed):
        await client.send("presence")
    with pytest.raises(ClientClosed):
        await client.connect()


async def test_invalidator_on_live_room_updates(gateway: GatewayProcess) -> None:
    gid = f"g-{uid()}"
    room = f"group:{gid}"
    cache: dict[Any, str] = {
        ("chat", "threads", room): "stale",
        ("chat", "threads", room, "page", 2): "stale",
        ("chat", "threads", "group:other"): "fresh",
        ("users",): "fresh",
    }
    invalidated: asyncio.Queue[CacheKey] = asyncio.Queue()
    async with client_for(gateway, f"a-{uid()}", [gid]) as alice:
        await joined(alice, room)
        alice.on("*", Invalidator(cache, on_invalidate=invalidated.put_nowait))
        # Bob's arrival makes the gateway send alice a room_update for the room.
        async with client_for(gateway, f"b-{uid()}", [gid]):
            assert await invalidated.get() == ("chat", "threads", room)
    assert cache == {("chat", "threads", "group:other"): "fresh", ("users",): "fresh"}
