"""Chaos on two instances sharing one Redis: clients in one group room lose their
connections in every way we can cause while the application publishes at a steady rate,
and one instance is SIGKILLed and restarted mid-stream. Afterwards every client holds
every publication exactly once, in order, and no room reported a loss."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import httpx
import pytest

from roomcast.client import Client
from tests.client.support import FAST
from tests.cluster.support import API_KEY, Cluster
from tests.helpers.cutter import CuttableProxy
from tests.helpers.received import Received
from tests.helpers.redis_server import RedisServer
from tests.helpers.tokens import make_token

ROOM = "group:chaos"
CLIENTS = 20
MESSAGES = 1000
WAIT = 120.0


@pytest.fixture
def pair(redis_server: RedisServer) -> Iterator[Cluster]:
    # Retention large enough for the longest outage here (an instance restart).
    cluster = Cluster(redis_server, 2, ROOMCAST_HISTORY_GROUP_SIZE="5000").start()
    yield cluster
    cluster.close()


class App(Received):
    """One client, its proxy, and what its application saw."""

    def __init__(self, client: Client, proxy: CuttableProxy) -> None:
        super().__init__(client, ROOM, wait=WAIT)
        self.client = client
        self.proxy = proxy


async def test_every_client_gets_every_publication_once_in_order(pair: Cluster) -> None:
    a, b = pair.gateways
    rng = random.Random(11)
    proxies = [await CuttableProxy((a, b)[i % 2].port).start() for i in range(CLIENTS)]
    apps = [
        App(Client(p.url(), token=make_token(pair.secret, f"c{i}", groups=["chaos"]),
                   backoff=FAST), p)
        for i, p in enumerate(proxies)
    ]
    b_alive = True
    try:
        for app in apps:
            await app.client.connect()
            await app.client.room(ROOM).wait_joined()
        async with httpx.AsyncClient(timeout=WAIT, headers={"X-API-Key": API_KEY}) as http:

            posting = asyncio.Lock()  # held during each API call

            async def publisher() -> None:
                for n in range(1, MESSAGES + 1):
                    async with posting:
                        gw = b if b_alive and n % 2 else a
                        r = await http.post(f"{gw.base_url}/websocket/rooms/{ROOM}/message",
                                            json={"type": "message", "data": {"n": n}})
                    assert r.status_code in (200, 202), r.text
                    await asyncio.sleep(0.005)  # a steady rate, not a test wait

            async def kick(app: App) -> None:
                """The server closes it with 1001 (reconnect at once)."""
                conn = app.client.connection_id
                if conn is not None:
                    await http.post(f"{a.base_url}/websocket/connections/{conn}/disconnect",
                                    params={"reconnect": "true"})

            async def drop(app: App) -> None:
                """The network drops it for a moment."""
                app.proxy.cut()
                await asyncio.sleep(rng.uniform(0.05, 0.5))
                app.proxy.restore()

            task = asyncio.create_task(publisher())
            for round_ in range(12):
                await asyncio.sleep(rng.uniform(0.1, 0.4))
                victims = rng.sample(apps, 3)
                await asyncio.gather(drop(victims[0]), drop(victims[1]), kick(victims[2]))
                if round_ == 5:
                    b_alive = False
                    async with posting:
                        pass  # no call to B is under way: none is cut without an answer
                    await asyncio.to_thread(b.kill)
                    await asyncio.to_thread(b.start)
                    b_alive = True
            await asyncio.wait_for(task, WAIT)
        for app in apps:
            await app.until(numbers=MESSAGES)
        for i, app in enumerate(apps):
            assert app.numbers == list(range(1, MESSAGES + 1)), f"client {i}"
            assert all(o.recovered for o in app.outcomes), (i, app.outcomes)
            # The server itself sent nothing twice (the SDK had nothing to drop).
            assert app.client.duplicates_dropped == 0, f"client {i}"
        assert any(app.outcomes for app in apps)  # reconnects did happen and recovered
    finally:
        for app in apps:
            await app.client.close()
        for proxy in proxies:
            await proxy.close()
