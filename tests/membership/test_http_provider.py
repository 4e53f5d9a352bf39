"""Memberships from the application over HTTP, as in a go-falcon deployment.

A small aiohttp app in the test plays the Go application (its groups API, which
can answer, fail or hang); a real gateway reads it; a raw Redis client plays a Go
instance announcing a change. Everything through real sockets.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from roomcast.membership.http import parse_groups
from tests.admin.support import API_KEY
from tests.conftest import GatewayFactory
from tests.core.support import log_events, unique
from tests.helpers.gateway import GatewayProcess
from tests.helpers.problems import answer, problem
from tests.helpers.redis_server import RedisServer
from tests.helpers.tokens import make_token
from tests.helpers.ws import Message, Peer, connect_peer

pytestmark = pytest.mark.redis


@dataclass
class FakeApp:
    """The application's groups API: ``GET /users/{user_id}/groups``."""

    groups: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    mode: str = "up"  # up, down (503), hang
    requests: list[str] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)
    port: int = 0
    released: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        user = request.match_info["user_id"]
        self.requests.append(user)
        self.auth.append(request.headers.get("Authorization"))
        if self.mode == "down":
            return web.Response(status=503, text="maintenance")
        if self.mode == "hang":
            await self.released.wait()
        if user not in self.groups:
            return web.Response(status=404)
        return web.json_response({"groups": self.groups[user]})

    @property
    def template(self) -> str:
        return f"http://127.0.0.1:{self.port}/users/{{user_id}}/groups"


@pytest.fixture
async def app() -> AsyncIterator[FakeApp]:
    fake = FakeApp()
    application = web.Application()
    application.router.add_get("/users/{user_id}/groups", fake.handle)
    runner = web.AppRunner(application)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.port = runner.addresses[0][1]
    yield fake
    fake.released.set()
    await runner.cleanup()


def gateway_for(factory: GatewayFactory, app: FakeApp, redis: RedisServer) -> GatewayProcess:
    return factory(env={
        "REDIS_URL": redis.url,
        "ROOMCAST_MEMBERSHIP_URL": app.template,
        "ROOMCAST_MEMBERSHIP_TIMEOUT": "1",
        "ROOMCAST_MEMBERSHIP_CACHE": "600",  # long: the tests see when it is bypassed
        "ROOMCAST_MEMBERSHIP_AUTHORIZATION": "Bearer app-service-token",
        "ROOMCAST_API_KEY": API_KEY,
    })


async def go_announces(redis: RedisServer, user: str, group: str, name: str,
                       joined: bool) -> None:
    """What the Go application publishes when a membership changes."""
    message = {"id": unique("go"), "type": "group_membership_change",
               "data": {"user_id": user, "group_id": group, "group_name": name,
                        "joined": joined, "timestamp": "2024-05-01T12:00:00Z"},
               "timestamp": "2024-05-01T12:00:00.123456789Z"}
    payload = {"server_id": "9b2e4c1a-0000-4000-8000-0000000060a0", "message": message,
               "timestamp": "2024-05-01T12:00:00.987654321Z"}
    client = aioredis.Redis.from_url(redis.url)
    try:
        await client.publish("websocket:users", json.dumps(payload))
    finally:
        await client.aclose()


async def collect(peer: Peer, kinds: set[str]) -> dict[str, Message]:
    """The first message of each of these types (others are skipped)."""
    got: dict[str, Message] = {}
    while set(got) != kinds:
        msg = await peer.expect(lambda m: m.get("type") in kinds - set(got))
        got[msg["type"]] = msg
    return got


async def until(peer: Peer, kind: str, room: str) -> Message:
    return await peer.expect(lambda m: m.get("type") == kind and m.get("room") == room)


async def test_groups_come_from_the_app_and_follow_go_announcements(
        gateway_factory: GatewayFactory, app: FakeApp, redis_server: RedisServer) -> None:
    user = unique("fc")
    app.groups[user] = [{"id": "fleet", "name": "Fleet Commanders"}, {"id": "ops", "name": "Ops"}]
    gw = gateway_for(gateway_factory, app, redis_server)
    peer = await connect_peer(gw, user, groups=None)
    await until(peer, "room_joined", "group:fleet")
    await until(peer, "room_joined", "group:ops")
    assert app.auth[-1] == "Bearer app-service-token"
    # A second connection within the cache time does not ask again.
    second = await connect_peer(gw, user)
    await until(second, "room_joined", "group:ops")
    assert app.requests.count(user) == 1

    # The app changes the memberships, then announces one of them over Redis, as Go does.
    app.groups[user] = [{"id": "ops", "name": "Ops"}, {"id": "new", "name": "Newcomers"}]
    await go_announces(redis_server, user, "new", "Newcomers", joined=True)
    for conn in (peer, second):
        got = await collect(conn, {"group_membership_change", "room_joined", "room_left"})
        # Delivered as Go published it, and the rooms moved (the order is the server's).
        assert got["group_membership_change"]["data"]["group_id"] == "new"
        assert got["room_joined"]["room"] == "group:new"
        assert got["room_joined"]["data"]["name"] == "Group: Newcomers"
        assert got["room_left"]["room"] == "group:fleet"
        assert got["room_left"]["data"]["reason"] == "membership_removed"
    assert app.requests.count(user) == 2  # re-read once, past the cache
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=10,
                                 headers={"X-API-Key": API_KEY}) as http:
        listing = answer(await http.get("/websocket/rooms", params={"member_id": user}),
                         "RoomList")
        assert {r["id"] for r in listing["rooms"]} == {f"user:{user}", "group:ops", "group:new"}
        groups = answer(await http.get(f"/websocket/users/{user}/groups"), "GroupList")
        assert [g["id"] for g in groups["groups"]] == ["new", "ops"]
        # The app owns the memberships: the API cannot change them.
        r = await http.put(f"/websocket/users/{user}/groups/other", json={"name": "Other"})
        problem(r, 409, "read_only")
    await peer.close()
    await second.close()


async def test_app_down_means_personal_room_then_groups_when_it_is_back(
        gateway_factory: GatewayFactory, app: FakeApp, redis_server: RedisServer) -> None:
    user, other = unique("down"), unique("down2")
    app.groups[user] = [{"id": "fleet", "name": "Fleet"}]
    app.groups[other] = [{"id": "fleet", "name": "Fleet"}]
    gw = gateway_for(gateway_factory, app, redis_server)
    app.mode = "down"
    peer = await connect_peer(gw, user)  # not refused: the personal room only
    assert peer.rooms == {f"user:{user}"}
    late = await connect_peer(gw, other)
    assert late.rooms == {f"user:{other}"}
    app.mode = "up"
    # The retry (1 s, then doubling) moves both in without a reconnect.
    for conn in (peer, late):
        await until(conn, "room_joined", "group:fleet")
    events = [e["event"] for e in log_events(gw)]
    assert events.count("membership_app_unavailable") == 1  # once per outage, logged
    assert "membership_app_available" in events
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=10) as http:
        scrape = (await http.get("/metrics")).text
    counted = {result: float(line.rsplit(" ", 1)[1]) for line in scrape.splitlines()
               for result in ("error", "ok")
               if line.startswith(f'roomcast_membership_fetches_total{{result="{result}"}}')}
    assert counted["error"] >= 1 and counted["ok"] >= 2, counted  # counted
    await peer.close()
    await late.close()


async def test_a_hanging_app_does_not_hold_the_handshake(
        gateway_factory: GatewayFactory, app: FakeApp, redis_server: RedisServer) -> None:
    user = unique("hang")
    app.groups[user] = [{"id": "fleet", "name": "Fleet"}]
    gw = gateway_for(gateway_factory, app, redis_server)  # 1 s membership timeout
    app.mode = "hang"
    peer = await connect_peer(gw, user)
    assert peer.rooms == {f"user:{user}"}
    app.mode = "up"
    app.released.set()
    await until(peer, "room_joined", "group:fleet")
    assert any(e["event"] == "membership_app_unavailable" and "Timeout" in e["error"]
               for e in log_events(gw))
    await peer.close()


async def test_a_request_that_is_no_upgrade_asks_the_app_nothing(
        gateway_factory: GatewayFactory, app: FakeApp, redis_server: RedisServer) -> None:
    user = unique("plain")
    app.groups[user] = [{"id": "fleet", "name": "Fleet"}]
    gw = gateway_for(gateway_factory, app, redis_server)
    token = make_token(gw.secret, user)
    plain = {"Authorization": f"Bearer {token}"}
    old = {**plain, "Upgrade": "websocket", "Connection": "Upgrade",
           "Sec-WebSocket-Version": "8", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=10) as http:
        problem(await http.get("/websocket/connect", headers=plain), 426, "upgrade_required")
        refused = await http.get("/websocket/connect", headers=old)
    problem(refused, 426, "upgrade_required")
    assert refused.headers["sec-websocket-version"] == "13"
    assert app.requests == []
    # A WebSocket of the same user is what asks.
    peer = await connect_peer(gw, user)
    await until(peer, "room_joined", "group:fleet")
    assert app.requests == [user]
    await peer.close()


@pytest.mark.parametrize(("body", "ids"), [
    ({"groups": [{"id": "b", "name": "B"}, {"id": "a"}]}, [("a", "a"), ("b", "B")]),
    ([{"group_id": 7, "group_name": "Seven"}], [("7", "Seven")]),
    (["x", "y"], [("x", "x"), ("y", "y")]),
    ({"groups": None}, []),
    ({}, []),
])
def test_parse_groups(body: object, ids: list[tuple[str, str]]) -> None:
    assert [(g.id, g.name) for g in parse_groups(body)] == ids


@pytest.mark.parametrize("body", [{"groups": "fleet"}, [{"name": "no id"}], [True], [[1]],
                                  ["x" * 129], "text"])
def test_parse_groups_refuses_other_shapes(body: object) -> None:
    with pytest.raises(ValueError):
        parse_groups(body)
