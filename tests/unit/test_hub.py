"""The hub's indexes (connection, user, room, both ways) and its fan-out."""

from __future__ import annotations

import asyncio

from roomcast.broker.base import ToAll, ToConnection, ToRoom, ToUser
from roomcast.hub import Hub
from roomcast.protocol.frames import text_frame
from roomcast.types import ConnId, RoomId, UserId
from roomcast.writer import Flusher
from tests.unit.fakes import make_conn

RED, BLUE = RoomId("group:red"), RoomId("group:blue")


def test_add_indexes_by_id_and_user() -> None:
    hub = Hub()
    a1, _ = make_conn("a1", "alice")
    a2, _ = make_conn("a2", "alice")
    hub.add(a1)
    hub.add(a2)
    assert set(hub.connections) == {"a1", "a2"}
    assert set(hub.users[UserId("alice")]) == {"a1", "a2"}


def test_join_and_leave_keep_both_directions_in_step() -> None:
    hub = Hub()
    a, _ = make_conn("a", "alice")
    hub.add(a)
    assert hub.join(a, RED, "Group: Red")
    assert not hub.join(a, RED, "Group: Red")  # already in
    assert a.rooms == {RED} and set(hub.rooms[RED]) == {"a"}
    assert hub.room_names[RED] == "Group: Red" and hub.member_count(RED) == 1
    assert hub.leave(a, RED)
    assert not hub.leave(a, RED)  # not in any more
    assert a.rooms == set()


def test_an_empty_room_disappears() -> None:
    hub = Hub()
    a, _ = make_conn("a", "alice")
    b, _ = make_conn("b", "bob")
    for conn in (a, b):
        hub.add(conn)
        hub.join(conn, RED, "Red")
    hub.leave(a, RED)
    assert hub.member_count(RED) == 1 and RED in hub.room_names
    hub.leave(b, RED)
    assert RED not in hub.rooms and RED not in hub.room_names
    assert hub.member_count(RED) == 0


def test_remove_leaves_every_room_and_forgets_the_user() -> None:
    hub = Hub()
    a, _ = make_conn("a", "alice")
    b, _ = make_conn("b", "bob")
    for conn in (a, b):
        hub.add(conn)
    hub.join(a, RED, "Red")
    hub.join(a, BLUE, "Blue")
    hub.join(b, BLUE, "Blue")
    assert sorted(hub.remove(a)) == sorted([RED, BLUE])
    assert "a" not in hub.connections and UserId("alice") not in hub.users
    assert RED not in hub.rooms and set(hub.rooms[BLUE]) == {"b"}
    assert hub.remove(a) == []  # twice is harmless


def test_remove_keeps_the_users_other_connections() -> None:
    hub = Hub()
    a1, _ = make_conn("a1", "alice")
    a2, _ = make_conn("a2", "alice")
    hub.add(a1)
    hub.add(a2)
    hub.remove(a1)
    assert set(hub.users[UserId("alice")]) == {"a2"}


def test_recipients_of_each_target() -> None:
    hub = Hub()
    a1, _ = make_conn("a1", "alice")
    a2, _ = make_conn("a2", "alice")
    b, _ = make_conn("b", "bob")
    for conn in (a1, a2, b):
        hub.add(conn)
    hub.join(a1, RED, "Red")
    hub.join(b, RED, "Red")

    def ids(target: object) -> set[str]:
        return {c.id for c in hub.recipients(target)}  # type: ignore[arg-type]

    assert ids(ToRoom(RED)) == {"a1", "b"}
    assert ids(ToRoom(RED, exclude=ConnId("b"))) == {"a1"}
    assert ids(ToRoom(BLUE)) == set()
    assert ids(ToUser(UserId("alice"))) == {"a1", "a2"}
    assert ids(ToUser(UserId("nobody"))) == set()
    assert ids(ToConnection(ConnId("a2"))) == {"a2"}
    assert ids(ToConnection(ConnId("gone"))) == set()
    assert ids(ToAll()) == {"a1", "a2", "b"}


async def test_deliver_frames_once_and_reaches_only_the_target() -> None:
    hub, flusher = Hub(), Flusher()
    conns = {name: make_conn(name, name, flusher) for name in ("a", "b", "c")}
    for conn, _ in conns.values():
        hub.add(conn)
    hub.join(conns["a"][0], RED, "Red")
    hub.join(conns["b"][0], RED, "Red")
    payload = b'{"type":"message"}'
    assert hub.deliver(ToRoom(RED), payload) == 2
    assert hub.deliver(ToRoom(RED, exclude=ConnId("a")), payload) == 1
    assert hub.deliver(ToRoom(BLUE), payload) == 0
    await asyncio.sleep(0)  # one loop pass: the flusher writes what was queued
    frame = text_frame(payload)
    assert conns["a"][1].writes == [frame]
    # b's first frame went out at once, the second was queued behind it.
    assert b"".join(conns["b"][1].writes) == frame + frame
    assert conns["c"][1].writes == []


async def test_deliver_does_not_count_a_closed_writer() -> None:
    hub = Hub()
    a, _ = make_conn("a", "alice")
    b, _ = make_conn("b", "bob")
    for conn in (a, b):
        hub.add(conn)
        hub.join(conn, RED, "Red")
    b.writer.close(flush=False)
    assert hub.deliver(ToRoom(RED), b"{}") == 1
    assert hub.deliver(ToAll(), b"{}") == 1


class RecordingCloser:
    def __init__(self) -> None:
        self.calls: list[tuple[int, str]] = []

    def __call__(self, code: int, reason: str) -> None:
        self.calls.append((code, reason))

    async def wait(self) -> None:
        return None


def test_connection_close_goes_through_its_closer() -> None:
    conn, _ = make_conn("a", "alice")
    conn.close(1001, "bye")  # no closer yet: nothing to do
    closer = RecordingCloser()
    conn.closer = closer
    conn.close(1001, "bye")
    assert closer.calls == [(1001, "bye")]


async def test_connection_send_frames_one_envelope_for_itself() -> None:
    conn, transport = make_conn("a", "alice")
    assert conn.send(b'{"type":"presence"}')
    await asyncio.sleep(0)
    assert transport.writes == [text_frame(b'{"type":"presence"}')]


async def test_a_room_delivery_follows_every_join_and_leave() -> None:
    """The room's list of writers is kept between messages: joins and leaves renew it."""
    hub, flusher = Hub(), Flusher()
    conns = [make_conn(f"c{n}", f"u{n}", flusher) for n in range(20)]
    for conn, _ in conns:
        hub.add(conn)
    for conn, _ in conns[:18]:
        hub.join(conn, RED, "Red")
    payload = b'{"type":"message"}'
    assert hub.deliver(ToRoom(RED), payload) == 18
    await asyncio.sleep(0)
    hub.join(conns[18][0], RED, "Red")
    hub.leave(conns[0][0], RED)
    assert hub.deliver(ToRoom(RED), payload) == 18
    await asyncio.sleep(0)
    hub.remove(conns[1][0])
    assert hub.deliver(ToRoom(RED), payload) == 17
    await asyncio.sleep(0)
    frame = text_frame(payload)
    writes = [len(transport.writes) for _, transport in conns]
    assert writes == [1, 2] + [3] * 16 + [2, 0]
    assert all(w == frame for _, t in conns for w in t.writes)
