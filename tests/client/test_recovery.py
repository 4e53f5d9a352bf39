"""Recovery through the real gateway (memory engine): what a client missed while its
connection was down is replayed exactly once, in order, or it is told it was not.

Clients reach the gateway through a proxy the test cuts (a network outage: the gateway
sees the socket vanish, the client reconnects until the proxy is restored).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from roomcast.client import Client, ConnectionState, Reason
from tests.admin.support import API_KEY, admin_env
from tests.client.support import FAST, until_state
from tests.conftest import GatewayFactory
from tests.helpers.cutter import CuttableProxy
from tests.helpers.gateway import GatewayProcess
from tests.helpers.received import Received
from tests.helpers.tokens import make_token

ROOM = "group:ops"
WAIT = 20.0


@pytest.fixture
async def proxied(gateway_factory: GatewayFactory) -> AsyncIterator[tuple[GatewayProcess,
                                                                          CuttableProxy]]:
    gw = gateway_factory(admin_env())
    proxy = await CuttableProxy(gw.port).start()
    yield gw, proxy
    await proxy.close()


async def publish(api: httpx.AsyncClient, path: str, n: int) -> dict[str, Any]:
    r = await api.post(path, json={"type": "message", "data": {"n": n}})
    assert r.status_code in (200, 202), r.text
    body: dict[str, Any] = r.json()
    return body


def api_for(gw: GatewayProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=gw.base_url, timeout=WAIT, headers={"X-API-Key": API_KEY})


def client_via(proxy: CuttableProxy, gw: GatewayProcess, user: str, **kw: Any) -> Client:
    token = make_token(gw.secret, user, groups=["ops"])
    return Client(proxy.url(), token=token, backoff=FAST, **kw)


async def outage(client: Client, proxy: CuttableProxy) -> None:
    """Cut the client's connection and wait until it knows (it then retries in vain)."""
    states = client.states()
    proxy.cut()
    await asyncio.wait_for(until_state(states, ConnectionState.RECONNECTING), WAIT)


async def reconnect(client: Client, proxy: CuttableProxy) -> None:
    states = client.states()
    proxy.restore()
    await asyncio.wait_for(until_state(states, ConnectionState.CONNECTED), WAIT)


@pytest.mark.parametrize("path", [f"/websocket/rooms/{ROOM}/message",
                                  "/websocket/users/alice/message"])
async def test_missed_publications_are_replayed_once_in_order(
    proxied: tuple[GatewayProcess, CuttableProxy], path: str
) -> None:
    gw, proxy = proxied
    room = ROOM if "rooms" in path else "user:alice"
    async with api_for(gw) as api, client_via(proxy, gw, "alice") as client:
        seen = Received(client, room)
        await client.room(room).wait_joined()
        for n in (1, 2, 3):
            assert (await publish(api, path, n))["stored"]["offset"] == n
        await seen.until(numbers=3)
        await outage(client, proxy)
        # Nobody is connected: accepted and stored, 202.
        missed = [await publish(api, path, n) for n in range(4, 11)]
        assert {m["message"] for m in missed} == {
            "No connection right now; the message was stored for later delivery"}
        assert [m["stored"]["offset"] for m in missed] == list(range(4, 11))
        await reconnect(client, proxy)
        await seen.until(numbers=10, outcomes=1)
        await publish(api, path, 11)
        await seen.until(numbers=11)
        assert seen.numbers == list(range(1, 12))
        [outcome] = seen.outcomes
        assert (outcome.recovered, outcome.reason, outcome.replayed) == (True, Reason.RECOVERED, 7)
        assert client.duplicates_dropped == 0
        position = client.position(room)
        assert position is not None and position.offset == 11


async def test_publications_during_outages_and_recoveries_arrive_exactly_once(
    proxied: tuple[GatewayProcess, CuttableProxy],
) -> None:
    """A publisher never pauses while the client drops and recovers several times:
    publications land before, during and after each handover."""
    gw, proxy = proxied
    total = 150
    async with api_for(gw) as api, client_via(proxy, gw, "bob") as client:
        seen = Received(client, ROOM)
        await client.room(ROOM).wait_joined()

        async def publisher() -> None:
            for n in range(1, total + 1):
                await publish(api, f"/websocket/rooms/{ROOM}/message", n)

        task = asyncio.create_task(publisher())
        for _ in range(4):
            await seen.until(numbers=len(seen.numbers) + 1)
            await outage(client, proxy)
            await reconnect(client, proxy)
        await asyncio.wait_for(task, WAIT * 3)
        # CONNECTED comes with the welcome, the recovery's outcome after it: when the
        # publisher was done before the last outage, every number is in before it.
        await seen.until(numbers=total, outcomes=4)
        assert seen.numbers == list(range(1, total + 1))
        assert len(seen.outcomes) == 4
        assert all(o.recovered for o in seen.outcomes), seen.outcomes


async def test_too_many_missed_is_not_recovered_and_nothing_is_replayed(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory(admin_env(ROOMCAST_RECOVERY_MAX="3"))
    proxy = await CuttableProxy(gw.port).start()
    try:
        async with api_for(gw) as api, client_via(proxy, gw, "carol") as client:
            seen = Received(client, ROOM)
            await client.room(ROOM).wait_joined()
            await publish(api, f"/websocket/rooms/{ROOM}/message", 1)
            await seen.until(numbers=1)
            await outage(client, proxy)
            for n in range(2, 7):
                await publish(api, f"/websocket/rooms/{ROOM}/message", n)
            await reconnect(client, proxy)
            await seen.until(outcomes=1)
            await publish(api, f"/websocket/rooms/{ROOM}/message", 7)
            await seen.until(numbers=2)
            assert seen.numbers == [1, 7]
            [outcome] = seen.outcomes
            assert (outcome.recovered, outcome.reason, outcome.replayed) == (
                False, Reason.NOT_RECOVERED, 0)
    finally:
        await proxy.close()


async def test_new_epoch_after_a_restart_is_not_recovered(
    gateway_factory: GatewayFactory,
) -> None:
    """The memory engine loses its streams with the process: a new epoch, said so."""
    gw = gateway_factory(admin_env())
    token = make_token(gw.secret, "dave", groups=["ops"])
    async with api_for(gw) as api, Client(gw.ws_url, token=token, backoff=FAST) as client:
        seen = Received(client, ROOM)
        await client.room(ROOM).wait_joined()
        await publish(api, f"/websocket/rooms/{ROOM}/message", 1)
        await seen.until(numbers=1)
        before = client.position(ROOM)
        await asyncio.to_thread(gw.restart)
        await seen.until(outcomes=1)
        [outcome] = seen.outcomes
        assert (outcome.recovered, outcome.reason) == (False, Reason.NOT_RECOVERED)
        after = client.position(ROOM)
        assert before is not None and after is not None and after.epoch != before.epoch
        assert after.offset == 0


async def test_history_action_and_admin_history(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(admin_env())
    token = make_token(gw.secret, "erin", groups=["ops"])
    async with api_for(gw) as api, Client(gw.ws_url, token=token, backoff=FAST) as client:
        await client.room(ROOM).wait_joined()
        for n in range(1, 6):
            await publish(api, f"/websocket/rooms/{ROOM}/message", n)
        reply = await client.request({"type": "system", "data": {
            "action": "history", "room": ROOM, "limit": 2, "reverse": True}})
        assert [p["data"]["n"] for p in reply.data["publications"]] == [5, 4]
        assert reply.data["offset"] == 5 and isinstance(reply.data["epoch"], str)
        since = {"epoch": reply.data["epoch"], "offset": 3}
        reply = await client.request({"type": "system", "data": {
            "action": "history", "room": ROOM, "since": since}})
        assert [p["offset"] for p in reply.data["publications"]] == [4, 5]
        with pytest.raises(Exception) as refused:
            await client.request({"type": "system", "data": {
                "action": "history", "room": "group:elsewhere"}})
        assert getattr(refused.value, "code", None) == "forbidden"

        r = await api.get(f"/websocket/rooms/{ROOM}/history",
                          params={"since": 3, "epoch": str(since["epoch"]), "limit": 10})
        assert r.status_code == 200, r.text
        body = r.json()
        assert [p["data"]["n"] for p in body["publications"]] == [4, 5]
        assert (body["room"], body["epoch"], body["offset"]) == (ROOM, since["epoch"], 5)
        r = await api.get(f"/websocket/rooms/{ROOM}/history", params={"reverse": "true",
                                                                     "limit": 1})
        assert [p["data"]["n"] for p in r.json()["publications"]] == [5]
        r = await api.get("/websocket/rooms/lobby/history")
        assert r.status_code == 422
        assert r.headers["Content-Type"].startswith("application/problem+json")


async def test_a_graceful_restart_with_a_snapshot_keeps_recovery(
    gateway_factory: GatewayFactory, tmp_path: Path,
) -> None:
    """ROOMCAST_HISTORY_SNAPSHOT: the memory engine's streams survive SIGTERM + start."""
    gw = gateway_factory(admin_env(ROOMCAST_HISTORY_SNAPSHOT=str(tmp_path / "history")))
    proxy = await CuttableProxy(gw.port).start()
    try:
        async with api_for(gw) as api, client_via(proxy, gw, "finn") as client:
            seen = Received(client, ROOM)
            await client.room(ROOM).wait_joined()
            await publish(api, f"/websocket/rooms/{ROOM}/message", 1)
            await seen.until(numbers=1)
            await outage(client, proxy)
            for n in (2, 3):
                await publish(api, f"/websocket/rooms/{ROOM}/message", n)
            await asyncio.to_thread(gw.restart)
            await reconnect(client, proxy)
            await seen.until(numbers=3, outcomes=1)
            assert seen.numbers == [1, 2, 3]
            [outcome] = seen.outcomes
            assert (outcome.recovered, outcome.replayed) == (True, 2)
    finally:
        await proxy.close()
