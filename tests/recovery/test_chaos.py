"""The acceptance of history and recovery: no message lost or duplicated across reconnects.

Two gateway instances on one Redis; SDK clients in one group room, spread over both,
each behind its own relay. Numbered messages go to the room through the admin API at a
steady rate while clients lose their connection in every way a deployment sees: the
network drops (the relay cuts it, sometimes refusing reconnects for a while), an
administrator moves a connection (disconnect with reconnect), a consumer too slow to
read is closed with 3008, and one instance is killed (SIGKILL) and started again. At
the end every client's app holds every message once, in order.

With retention shorter than an outage, the client cannot recover: its app is told
(``recovered: false``) before the first message after the gap, never a silent gap.

Nothing is timed: the publisher paces itself, and every wait is for an event.
"""

from __future__ import annotations

import asyncio
import os
import random

import httpx
import pytest

from roomcast.client import Reason
from tests.abuse.support import log_events
from tests.cluster.support import eventually
from tests.helpers.fixtures_redis import ClusterFactory
from tests.helpers.gateway import GatewayProcess
from tests.recovery.support import (
    DEADLINE,
    Watcher,
    api_client,
    start_watchers,
    stop_watchers,
    uid,
)

pytestmark = pytest.mark.redis

N_MESSAGES = 1000
N_CLIENTS = 20
#: Pause between two publications: a steady rate of at most ~100 messages per second.
PACE = 0.01
#: Pads of the messages that overflow the slow consumer (one connection only).
PAD = "x" * 60_000
QUEUE_LIMIT = 256 * 1024


def chaos_env(**extra: str) -> dict[str, str]:
    return {
        # Enough history for any outage of this test (the kill and restart included).
        "ROOMCAST_HISTORY_GROUP_SIZE": "5000",
        "ROOMCAST_RECOVERY_MAX": "5000",
        "ROOMCAST_MAX_QUEUE_BYTES": str(QUEUE_LIMIT),
        **extra,
    }


class Publisher:
    """Numbered messages into the room through the API of whichever instance is up."""

    def __init__(self, apis: list[httpx.AsyncClient], room: str) -> None:
        self.apis = apis
        self.room = room
        self.down: set[int] = set()
        self.sent = 0

    async def publish(self, data: dict[str, object]) -> None:
        up = [i for i in range(len(self.apis)) if i not in self.down]
        api = self.apis[up[self.sent % len(up)]]
        r = await api.post(f"/websocket/rooms/{self.room}/message",
                           json={"type": "notification", "data": data})
        assert r.status_code == 200, (data, r.status_code, r.text)
        self.sent += 1

    async def seq(self, n: int) -> None:
        await self.publish({"seq": n})

    async def marker(self, watchers: list[Watcher]) -> None:
        """A last publication every app must get: nothing is pending before it."""
        marker = uid("end")
        await self.publish({"marker": marker})
        async with asyncio.timeout(DEADLINE):
            await asyncio.gather(*(w.wait_marker(marker) for w in watchers))


async def overflow(api: httpx.AsyncClient, watcher: Watcher) -> str:
    """Stall the watcher's network and send it big messages until the gateway gives up
    on it (3008, logged as ``slow_consumer``); its relay then lets the close through."""
    conn_id = watcher.client.connection_id
    assert conn_id is not None
    watcher.relay.stall()
    try:
        for _ in range(200):
            events = [e for e in log_events(watcher.gateway, "slow_consumer")
                      if e.get("conn") == conn_id]
            if events:
                return conn_id
            r = await api.post(f"/websocket/connections/{conn_id}/message",
                               json={"type": "notification", "data": {"pad": PAD}})
            assert r.status_code in (200, 404), r.text  # 404: just closed
        raise AssertionError(f"{watcher.name} was never closed as a slow consumer")
    finally:
        watcher.relay.resume()


async def test_every_client_gets_every_message_once_in_order_through_chaos(
    redis_cluster: ClusterFactory,
) -> None:
    seed = int(os.environ.get("CHAOS_SEED", random.randrange(1 << 30)))
    print(f"CHAOS_SEED={seed}")  # rerun a failure with the same schedule
    rng = random.Random(seed)
    cluster = redis_cluster(**chaos_env())
    a, b = cluster.gateways
    group = uid("g")
    room = f"group:{group}"
    # Even clients are on instance a (killed), odd ones on b; client 1 is the slow one.
    slow, outage, moved = 1, 2, 4
    watchers = await start_watchers([a, b], cluster.secret, room, group, N_CLIENTS,
                                    small_buffer=frozenset({slow}))
    print("clients joined")
    apis = [api_client(a), api_client(b)]
    publisher = Publisher(apis, room)
    # The disruptions, by the number of the message they come before.
    ordinary = [i for i in range(N_CLIENTS) if i not in (slow, outage, moved)]
    cuts = {rng.randrange(50, N_MESSAGES - 50): rng.choice(ordinary) for _ in range(12)}
    outage_from, outage_to = 100, 220
    move_at, slow_at, kill_at = 300, 450, 600
    restart: asyncio.Task[GatewayProcess] | None = None
    overflowing: asyncio.Task[str] | None = None
    try:
        for n in range(N_MESSAGES):
            if n in cuts:
                watchers[cuts[n]].relay.cut()  # a network drop
            if n == outage_from:
                # Dropped, and reconnects fail until outage_to: ~120 messages missed.
                watchers[outage].relay.refuse()
                watchers[outage].relay.cut()
            if n == outage_to:
                watchers[outage].relay.refuse(False)
            if n == move_at:
                conn_id = watchers[moved].client.connection_id
                r = await apis[1].post(f"/websocket/connections/{conn_id}/disconnect",
                                       params={"reconnect": "true"})
                assert r.status_code == 200, r.text
            if n == slow_at:
                overflowing = asyncio.create_task(overflow(apis[1], watchers[slow]))
            if n == kill_at:
                publisher.down.add(0)
                a.kill()
                restart = asyncio.create_task(asyncio.to_thread(a.start))
            if restart is not None and restart.done() and 0 in publisher.down:
                await restart  # raises if the restart failed
                publisher.down.discard(0)
            await publisher.seq(n)
            await asyncio.sleep(PACE)  # the steady rate (not a wait for anything)
            if n % 250 == 0:
                print(f"published {n}")
        assert restart is not None and overflowing is not None
        await restart
        slow_conn = await overflowing
        await publisher.marker(watchers)
        for w in watchers:
            print(w.describe(N_MESSAGES))
        for w in watchers:
            assert w.seqs == list(range(N_MESSAGES)), w.describe(N_MESSAGES)
            failed = [r for r in w.recoveries if not r.recovered]
            assert failed == [], w.describe(N_MESSAGES)
            # Nor did the server send one twice (replay and live handed over exactly).
            assert w.client.duplicates_dropped == 0, w.describe(N_MESSAGES)
        # The disruptions did happen, and were recovered by replay.
        assert any(r.replayed > 0 for r in watchers[outage].recoveries), \
            watchers[outage].describe(N_MESSAGES)
        for i in range(0, N_CLIENTS, 2):  # every client of the killed instance
            assert watchers[i].recoveries, watchers[i].describe(N_MESSAGES)
        assert watchers[slow].recoveries, watchers[slow].describe(N_MESSAGES)
        assert any(e.get("conn") == slow_conn for e in log_events(b, "slow_consumer"))
        assert watchers[moved].recoveries, watchers[moved].describe(N_MESSAGES)
    finally:
        if restart is not None and not restart.done():
            await asyncio.wait({restart})
        if overflowing is not None and not overflowing.done():
            overflowing.cancel()
        for api in apis:
            await api.aclose()
        await stop_watchers(watchers)


async def test_an_outage_longer_than_retention_is_reported_never_a_silent_gap(
    redis_cluster: ClusterFactory,
) -> None:
    retained, n_messages = 40, 200
    cluster = redis_cluster(ROOMCAST_HISTORY_GROUP_SIZE=str(retained))
    a, b = cluster.gateways
    group = uid("g")
    room = f"group:{group}"
    watchers = await start_watchers([a, b], cluster.secret, room, group, 4)
    long_gone, short_gone = watchers[0], watchers[3]
    apis = [api_client(a), api_client(b)]
    publisher = Publisher(apis, room)
    try:
        for n in range(n_messages):
            if n == 50:  # misses 100 messages: more than the 40 retained
                long_gone.relay.refuse()
                long_gone.relay.cut()
            if n == 150:
                long_gone.relay.refuse(False)
            if n == 60:  # misses a few (plus its reconnect's): fewer than retained
                short_gone.relay.refuse()
                short_gone.relay.cut()
            if n == 62:
                short_gone.relay.refuse(False)
            await publisher.seq(n)
            await asyncio.sleep(PACE)

        async def rejoined() -> bool | None:
            return True if long_gone.recoveries else None

        await eventually(rejoined, "the long-gone client to reconnect", DEADLINE)
        await publisher.marker(watchers)
        for w in watchers:
            print(w.describe(n_messages))

        # The app was told, before the first message after the gap.
        (told,) = long_gone.recoveries
        assert told.recovered is False and told.reason is Reason.NOT_RECOVERED, told
        assert told.replayed == 0
        missing = long_gone.missing(n_messages)
        assert missing, long_gone.describe(n_messages)  # the gap is real...
        first_after = next(s for s in long_gone.seqs if s > missing[0])
        kinds = long_gone.events
        assert kinds.index(("recovery", told)) < kinds.index(("seq", first_after)), kinds
        # ...and never partly filled: what came is in order, without duplicates.
        assert long_gone.seqs == sorted(set(long_gone.seqs)), long_gone.describe(n_messages)
        assert missing == list(range(missing[0], missing[-1] + 1)), missing

        # Within retention, recovered in full.
        assert [r.recovered for r in short_gone.recoveries] == [True]
        assert short_gone.recoveries[0].replayed > 0
        for w in watchers[1:]:
            assert w.seqs == list(range(n_messages)), w.describe(n_messages)
    finally:
        for api in apis:
            await api.aclose()
        await stop_watchers(watchers)
