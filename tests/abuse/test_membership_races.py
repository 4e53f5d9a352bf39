"""Membership changes racing connections that open and close (Redis deployments).

Each test runs hundreds of interleavings with real sockets against one gateway on a
real Redis, and checks the end state, not how the race was won: every connection's
rooms (as the client was told them, and as the gateway holds them) match the user's
memberships, and a closed connection is never left in a room.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.abuse.support import API_KEY, DEADLINE, api_client, eventually, ping, uid
from tests.helpers.gateway import GatewayProcess
from tests.helpers.redis_server import RedisServer
from tests.helpers.tokens import make_token
from tests.helpers.ws import Message, Peer

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def gw(redis_server_module: RedisServer) -> Iterator[GatewayProcess]:
    gateway = GatewayProcess(env={
        "REDIS_URL": redis_server_module.url,
        "ROOMCAST_API_KEY": API_KEY,
        "ROOMCAST_MAX_CONNECTIONS_PER_USER": "200",
    }).start()
    yield gateway
    gateway.close()


@pytest.fixture
async def api(gw: GatewayProcess) -> AsyncIterator[httpx.AsyncClient]:
    client = api_client(gw)
    yield client
    await client.aclose()


async def set_member(api: httpx.AsyncClient, user: str, group: str, member: bool) -> None:
    path = f"/websocket/users/{user}/groups/{group}"
    r = await (api.put(path, json={"name": group}) if member else api.delete(path))
    assert r.status_code == 200, r.text


async def open_raw(gw: GatewayProcess, user: str, groups: list[str] | None = None) -> Peer:
    """Connect without waiting for any room event (the race is in what follows)."""
    token = make_token(gw.secret, user, groups=groups)
    ws = await connect(gw.ws_url, open_timeout=DEADLINE, max_size=None, max_queue=None,
                       additional_headers={"Authorization": f"Bearer {token}"})
    peer = Peer(ws)
    peer.welcome = await peer.recv()
    assert peer.welcome["type"] == "system_notification", peer.welcome
    peer.conn_id = peer.welcome["data"]["connection_id"]
    return peer


def replay(events: list[Message]) -> set[str]:
    """The rooms a client believes it is in, checking each event makes sense in order."""
    rooms: set[str] = set()
    for msg in events:
        if msg["type"] == "room_joined":
            assert msg["room"] not in rooms, f"room_joined twice for {msg['room']}: {events}"
            rooms.add(msg["room"])
        elif msg["type"] == "room_left":
            assert msg["room"] in rooms, f"room_left before room_joined: {events}"
            rooms.discard(msg["room"])
    return rooms


async def one_round(gw: GatewayProcess, api: httpx.AsyncClient, user: str, flip: str,
                    member: bool, rng: random.Random) -> None:
    """Open a connection while the user's membership of ``flip`` changes; check the result."""

    async def change() -> None:
        await asyncio.sleep(rng.uniform(0, 0.02))
        await set_member(api, user, flip, member)

    peer, _ = await asyncio.gather(open_raw(gw, user), change())
    try:
        # Everything the open and the change sent this connection precedes the pong.
        events = [peer.welcome, *await ping(peer)]
        expected = {f"user:{user}", "group:stable"} | ({f"group:{flip}"} if member else set())
        assert replay(events) == expected, events
        r = await api.get(f"/websocket/connections/{peer.conn_id}")
        assert r.status_code == 200, r.text
        assert set(r.json()["connection"]["rooms"]) == expected
    finally:
        await peer.close()


async def test_membership_changes_while_connections_open(
    gw: GatewayProcess, api: httpx.AsyncClient
) -> None:
    """Opening connections and PUT/DELETE of a membership, 320 interleavings."""
    users, rounds = 8, 40

    async def user_rounds(index: int) -> None:
        rng = random.Random(index)
        user, flip = uid("opener"), uid("flip")
        await set_member(api, user, "stable", True)
        for n in range(rounds):
            await one_round(gw, api, user, flip, n % 2 == 0, rng)

    async with asyncio.TaskGroup() as tasks:  # the first failure cancels the others
        for i in range(users):
            tasks.create_task(user_rounds(i))
    r = await api.get("/websocket/status")
    assert r.status_code == 200, r.text


async def abort_later(ws: ClientConnection, delay: float) -> None:
    """Drop the TCP connection without a close frame, like a client that vanished."""
    await asyncio.sleep(delay)
    ws.transport.abort()


async def test_membership_put_racing_disconnects_leaves_no_closed_member(
    gw: GatewayProcess, api: httpx.AsyncClient
) -> None:
    """A PUT moving 40 connections while they are aborted at random, 12 rounds (480)."""
    rng = random.Random(12)
    for _ in range(12):
        user, group = uid("leaver"), uid("g")
        peers = [await open_raw(gw, user) for _ in range(40)]
        for peer in peers:
            await ping(peer)  # each is fully open (in its personal room)
        await asyncio.gather(
            set_member(api, user, group, True),
            *(abort_later(p.ws, rng.uniform(0, 0.06)) for p in peers),
        )

        async def gone(user: str = user) -> bool | None:
            r = await api.get("/websocket/connections", params={"user_id": user})
            return True if r.status_code == 200 and r.json()["total"] == 0 else None

        await eventually(gone, f"connections of {user} gone")
        # A newcomer in the group must be its only member: nobody closed is left in it
        # (the count of its room_joined includes this instance's own members).
        observer = await open_raw(gw, uid("observer"), groups=[group])
        try:
            joined = [m for m in await ping(observer)
                      if m["type"] == "room_joined" and m["room"] == f"group:{group}"]
            assert len(joined) == 1 and joined[0]["data"]["member_count"] == 1, joined
        finally:
            await observer.close()


async def test_client_joins_and_leaves_racing_membership_changes(
    gw: GatewayProcess, api: httpx.AsyncClient
) -> None:
    """A client joining or leaving its group room while the membership changes, 4 x 60 rounds.

    A PUT races the client's leave; a DELETE races its join (after it had left the room).
    However each is won, the client's events must add up to the rooms the gateway holds.
    """

    async def rounds(index: int) -> None:
        rng = random.Random(100 + index)
        user, flip = uid("joiner"), uid("flip")
        room = f"group:{flip}"
        # Members make each member count a longer read: a wider window to race in.
        crowd = [await open_raw(gw, uid("crowd"), groups=[flip]) for _ in range(40)]
        peer = await open_raw(gw, user)
        events = [peer.welcome, *await ping(peer)]

        async def client(action: str) -> None:
            await asyncio.sleep(rng.uniform(0, 0.004))
            await peer.send({"type": "system", "id": uid(action),
                             "data": {"action": action, "room": room}})

        async def check() -> set[str]:
            events.extend(await ping(peer))  # the replies (ack or error) come before
            rooms = replay(events)
            r = await api.get(f"/websocket/connections/{peer.conn_id}")
            assert set(r.json()["connection"]["rooms"]) == rooms, (r.text, events[-8:])
            return rooms

        try:
            for n in range(60):
                if n % 2 == 0:
                    await asyncio.gather(client("leave"), set_member(api, user, flip, True))
                    if room in await check():
                        await client("leave")
                        assert room not in await check()
                else:
                    await asyncio.gather(client("join"), set_member(api, user, flip, False))
                    assert room not in await check()
        finally:
            await asyncio.gather(peer.close(), *(c.close() for c in crowd))

    async with asyncio.TaskGroup() as tasks:
        for i in range(4):
            tasks.create_task(rounds(i))
