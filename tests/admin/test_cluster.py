"""The admin API across two instances on one real Redis, and with Redis down (503)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.admin.support import admin_env, api_client, uid
from tests.helpers.gateway import GatewayProcess
from tests.helpers.problems import answer, problem
from tests.helpers.redis_server import RedisServer
from tests.helpers.ws import connect_peer

pytestmark = pytest.mark.redis


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    """Registry writes are asynchronous by contract (batched per loop turn): poll the state."""
    async with asyncio.timeout(timeout):
        for _ in iter(int, 1):
            if await check():
                return
            await asyncio.sleep(0.02)


@pytest.fixture
def pair(gateway_factory: Any, redis_server: RedisServer) -> tuple[GatewayProcess,
                                                                    GatewayProcess]:
    env = admin_env(REDIS_URL=redis_server.url)
    a = gateway_factory(env=env)
    b = gateway_factory(env={**env, "JWT_SECRET": a.secret})
    b.secret = a.secret
    return a, b


async def test_api_on_one_instance_reaches_the_other(
        pair: tuple[GatewayProcess, GatewayProcess]) -> None:
    a, b = pair
    user, group = uid("far"), uid("grp")
    peer = await connect_peer(b, user)  # lives on b; every call below goes to a
    async with api_client(a) as api:
        async def listed() -> bool:
            r = await api.get("/websocket/connections", params={"user_id": user})
            return bool(r.json()["total"] == 1)
        await eventually(listed)
        conn = (await api.get(f"/websocket/connections/{peer.conn_id}")).json()["connection"]
        status_b = (await api.get(f"{b.base_url}/websocket/status")).json()
        assert conn["server_id"] == status_b["server_id"]

        r = await api.post(f"/websocket/users/{user}/message",
                           json={"type": "notification", "data": {"n": 1}})
        assert r.status_code == 200 and r.json()["recipients_count"] == 1
        assert (await peer.recv())["id"] == r.json()["message_id"]

        r = await api.post(f"/websocket/connections/{peer.conn_id}/message",
                           json={"type": "message", "data": {}})
        assert r.json()["recipients_count"] == 1
        assert (await peer.recv())["to"] == peer.conn_id

        r = await api.put(f"/websocket/users/{user}/groups/{group}", json={"name": "Far"})
        assert r.json()["changed"] is True
        joined = await peer.recv()
        assert joined["type"] == "room_joined" and joined["room"] == f"group:{group}"
        assert (await peer.recv())["type"] == "group_membership_change"

        async def room_listed() -> bool:
            return (await api.get(f"/websocket/rooms/group:{group}")).status_code == 200
        await eventually(room_listed)
        r = await api.post(f"/websocket/rooms/group:{group}/message",
                           json={"type": "message", "data": {"x": 1}})
        assert r.json()["recipients_count"] == 1
        assert (await peer.recv())["data"] == {"x": 1}

        r = await api.post(f"/websocket/connections/{peer.conn_id}/disconnect")
        assert r.status_code == 200
        await peer.ws.wait_closed()
        assert peer.ws.close_code == 3500


async def test_redis_down_is_503_with_a_clear_message(
        pair: tuple[GatewayProcess, GatewayProcess], redis_server: RedisServer) -> None:
    a, _ = pair
    peer = await connect_peer(a, uid("local"))
    redis_server.stop()
    async with api_client(a) as api:

        async def noticed() -> bool:
            return bool(answer(await api.get("/websocket/status"), "Status")["status"]
                        == "unhealthy")

        # The gateway learns of the outage from its connection to Redis, a moment later
        # (its caches, such as which instances are alive, are trusted for a second).
        await eventually(noticed, timeout=30.0)
        status = answer(await api.get("/websocket/status"), "Status")
        assert status["status"] == "unhealthy" and "Redis" in status["reason"], status
        assert f":{redis_server.port}" not in str(status), status
        for method, path, body in (
            ("POST", "/websocket/broadcast", {"type": "notification", "data": {}}),
            ("POST", f"/websocket/users/{uid('u')}/message", {"type": "message", "data": {}}),
            ("PUT", f"/websocket/users/{uid('u')}/groups/g", {"name": "G"}),
            ("GET", "/websocket/connections", None),
        ):
            r = await api.request(method, path, json=body)
            detail = problem(r, 503, "unavailable")["detail"]
            assert "Redis" in detail or "membership store" in detail, detail
            # The address of Redis is for the logs only.
            assert f":{redis_server.port}" not in r.text, r.text
    await peer.close()
