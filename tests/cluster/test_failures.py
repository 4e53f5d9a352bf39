"""Failures: an instance crashing (SIGKILL), Redis going away and coming back.

Each test has its own Redis and gateways, as it kills or stops them. Nothing is
timed: states without an event (TTL expiry, reconnection) are polled with a deadline.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from websockets.exceptions import InvalidStatus

from tests.cluster.support import (
    Cluster,
    api_client,
    barrier,
    close_all,
    collect,
    eventually,
    join,
    registered,
    reply_to,
    uid,
    with_text,
)
from tests.helpers.problems import problem
from tests.helpers.redis_server import RedisServer
from tests.helpers.ws import Message, Peer, connect_peer

pytestmark = pytest.mark.redis

#: Bound of the waits for recovery: the listener's backoff is capped at 5 s.
RECOVERY = 60.0
#: The instance TTL of the crash test, in seconds.
INSTANCE_TTL = 9

ClusterFactory = Callable[..., Cluster]


@pytest.fixture
def make_cluster(redis_server: RedisServer) -> Iterator[ClusterFactory]:
    """Gateways on this test's own Redis (which the test may stop and start)."""
    made: list[Cluster] = []

    def make(n: int, **env: str) -> Cluster:
        made.append(Cluster(redis_server, n, **env).start())
        return made[-1]

    yield make
    for cluster in made:
        print(cluster.logs())  # shown by pytest only when the test failed
        cluster.close()


@asynccontextmanager
async def clients(cluster: Cluster) -> AsyncIterator[list[httpx.AsyncClient]]:
    apis = [api_client(gw) for gw in cluster.gateways]
    try:
        yield apis
    finally:
        for api in apis:
            await api.aclose()


async def status(api: httpx.AsyncClient) -> tuple[int, dict[str, Any]]:
    r = await api.get("/websocket/status")
    return r.status_code, r.json()


async def test_a_killed_instance_vanishes_from_listings_after_its_ttl(
    make_cluster: ClusterFactory,
) -> None:
    # The survivor refreshes its entries every TTL/3: a TTL this long leaves it 6 s of
    # slack on a busy machine, where 2 s was a bet that it would never be late by 1.3 s.
    cluster = make_cluster(2, ROOMCAST_INSTANCE_TTL=str(INSTANCE_TTL))
    a, b = cluster.gateways
    group = uid("g")
    room = f"group:{group}"
    survivor = await join(a, uid("a"), [group])
    doomed = [await join(b, uid("b"), [group]), await join(b, uid("b"))]
    try:
        async with clients(cluster) as (api_a, api_b):
            for peer in doomed:
                await registered(api_a, peer.conn_id)
            await registered(api_a, doomed[0].conn_id, room)
            await registered(api_b, survivor.conn_id, room)
            r = await api_a.get(f"/websocket/rooms/{room}")
            assert r.json()["room"]["member_count"] == 2, r.text

            b.kill()  # SIGKILL: no clean-up of its registry entries

            async def gone() -> dict[str, Any] | None:
                listing = (await api_a.get("/websocket/connections")).json()
                return listing if listing["total"] == 1 else None

            listing = await eventually(gone, "the killed instance's connections to expire",
                                       3 * INSTANCE_TTL)
            assert [c["id"] for c in listing["connections"]] == [survivor.conn_id]
            for peer in doomed:
                r = await api_a.get(f"/websocket/connections/{peer.conn_id}")
                assert r.status_code == 404, r.text
                r = await api_a.post(f"/websocket/connections/{peer.conn_id}/message",
                                     json={"type": "notification", "data": {}})
                assert r.status_code == 404, r.text
            r = await api_a.get(f"/websocket/rooms/{room}")
            assert r.json()["room"]["member_count"] == 1, r.text
            rooms = (await api_a.get("/websocket/rooms")).json()
            assert [x["id"] for x in rooms["rooms"]] == sorted(
                [room, f"user:{survivor.welcome['data']['user_id']}"])

            async def counted() -> dict[str, Any] | None:
                # The cluster counts are cached for a second: wait for a fresh read.
                _, body = await status(api_a)
                cluster = body.get("cluster") or {}
                return body if cluster.get("connections") == 1 else None

            body = await eventually(counted, "status to count the survivor only")
            assert body["cluster"]["rooms"] == len(rooms["rooms"]), body  # not the dead's rooms
            # Counts exclude the dead instance, and the survivor still gets its messages.
            r = await api_a.post(f"/websocket/rooms/{room}/message",
                                 json={"type": "notification", "data": {"text": "still here"}})
            assert r.status_code == 200 and r.json()["recipients_count"] == 1, r.text
            got = await survivor.expect("notification")
            assert got["data"] == {"text": "still here"}
    finally:
        await close_all(survivor, *doomed)


def has_text(text: str) -> Callable[[Message], bool]:
    return lambda m: with_text([m], text) != []


async def publish_room(sender: Peer, room: str, text: str) -> Message:
    """A client message into ``room``; returns the sender's reply (ack or error)."""
    mid = uid("m")
    await sender.send({"id": mid, "type": "message", "room": room, "data": {"text": text}})
    got = await collect(sender, reply_to(mid))
    assert len(with_text(got, text)) == 1, got  # its own copy, delivered locally
    return got[-1]


async def test_redis_outage_keeps_local_delivery_and_recovers_without_restart(
    make_cluster: ClusterFactory, redis_server: RedisServer
) -> None:
    cluster = make_cluster(2, ROOMCAST_INSTANCE_TTL="3")
    a, b = cluster.gateways
    group = uid("g")
    room = f"group:{group}"
    a1, a2 = await join(a, uid("a1"), [group]), await join(a, uid("a2"), [group])
    b1, b2 = await join(b, uid("b1"), [group]), await join(b, uid("b2"), [group])
    peers = (a1, a2, b1, b2)
    raw = aioredis.Redis.from_url(redis_server.url)
    try:
        async with clients(cluster) as apis:
            await registered(apis[0], b1.conn_id, room)
            await barrier(raw, *peers)
            await raw.aclose()

            redis_server.stop()
            for api in apis:

                async def unhealthy(api: httpx.AsyncClient = api) -> dict[str, Any] | None:
                    code, body = await status(api)
                    assert code == 200, body  # always 200, as in Go
                    return body if body["status"] == "unhealthy" else None

                body = await eventually(unhealthy, "status to report the outage")
                assert "Redis" in body["reason"], body
                assert f":{redis_server.port}" not in str(body), body  # logs only
                assert body["redis_channels"] == [], body
                assert (await api.get("/readyz")).status_code == 503

            # Local delivery goes on; the sender learns the others were not reached.
            for sender, local in ((a1, a2), (b2, b1)):
                text = uid("local")
                reply = await publish_room(sender, room, text)
                assert reply["type"] == "error", reply
                assert reply["data"]["code"] == "unavailable" and reply["data"]["temporary"]
                got = await local.expect(has_text(text))
                assert got["from"] == sender.conn_id
                # A direct message to a connection of the same instance, too.
                text = uid("direct")
                mid = uid("d")
                await sender.send({"id": mid, "type": "message", "to": local.conn_id,
                                   "data": {"text": text}})
                got = await local.expect(has_text(text))
                assert got["to"] == local.conn_id and got["from"] == sender.conn_id
                await sender.expect(reply_to(mid))
            # A request that delivers nothing is not said to have been delivered.
            mid = uid("members")
            await a1.send({"id": mid, "type": "system",
                           "data": {"action": "members", "room": room}})
            reply = await a1.expect(reply_to(mid))
            assert reply["type"] == "error" and reply["data"]["code"] == "unavailable", reply
            assert "delivered" not in reply["data"]["message"], reply
            # The admin API fails with a clear 503 instead of hanging or pretending.
            for url in (f"/websocket/rooms/{room}/message", "/websocket/broadcast",
                        f"/websocket/users/{uid('u')}/message"):
                r = await apis[0].post(url, json={"type": "notification", "data": {}})
                assert "Redis" in problem(r, 503, "unavailable")["detail"], r.text
            r = await apis[1].put(f"/websocket/users/{uid('u')}/groups/{group}")
            problem(r, 503, "unavailable")
            # A new connection cannot learn its groups: refused with 503, not half-joined.
            with pytest.raises(InvalidStatus) as refused:
                await connect_peer(b, uid("late"))
            assert refused.value.response.status_code == 503

            redis_server.start()  # same port: the gateways reconnect on their own
            for api in apis:

                async def healthy(api: httpx.AsyncClient = api) -> dict[str, Any] | None:
                    _, body = await status(api)
                    return body if body["status"] == "healthy" else None

                await eventually(healthy, "status to be healthy again", RECOVERY)
            await cross_instance_delivery_resumes(apis[0], room, b1)

            raw = aioredis.Redis.from_url(redis_server.url)
            await barrier(raw, *peers)
            # Clean delivery both ways, exactly once, and the registry has recovered.
            text = uid("after")
            reply = await publish_room(b2, room, text)
            assert reply["data"]["status"] == "ok", reply
            pending = await barrier(raw, *peers)
            assert [len(with_text(msgs, text)) for msgs in pending] == [1, 1, 1, 0], pending
            await registered(apis[0], b1.conn_id, room)
    finally:
        await raw.aclose()
        await close_all(*peers)


async def cross_instance_delivery_resumes(api: httpx.AsyncClient, room: str,
                                          remote: Peer) -> None:
    """Publish through one instance until a message reaches ``remote`` on the other.

    Pub/sub is at-most-once: what is published before the other instance has
    resubscribed is lost for it, so each attempt is a new message.
    """
    sent: set[str] = set()

    async def attempt() -> bool | None:
        text = uid("probe")
        r = await api.post(f"/websocket/rooms/{room}/message",
                           json={"type": "notification", "data": {"text": text}})
        if r.status_code != 200:
            return None
        sent.add(text)
        try:
            await remote.expect(lambda m: m.get("data", {}).get("text") in sent, timeout=0.5)
        except TimeoutError:
            return None
        return True

    await eventually(attempt, "a message from one instance to reach the other", RECOVERY)


async def test_registry_entries_lost_by_redis_are_written_again(
    make_cluster: ClusterFactory, redis_server: RedisServer
) -> None:
    """Redis restarted empty (or flushed) between two refreshes: nothing failed, yet
    every entry is gone; the instances notice on their next refresh and rewrite them."""
    cluster = make_cluster(2, ROOMCAST_INSTANCE_TTL="3")
    group = uid("g")
    room = f"group:{group}"
    peers = [await join(gw, uid("u"), [group]) for gw in cluster.gateways]
    raw = aioredis.Redis.from_url(redis_server.url)
    try:
        async with clients(cluster) as apis:
            for peer, other in zip(peers, reversed(apis), strict=True):
                await registered(other, peer.conn_id, room)
            await raw.flushall()
            r = await apis[0].get(f"/websocket/connections/{peers[1].conn_id}")
            assert r.status_code == 404, r.text  # really gone
            for peer, other in zip(peers, reversed(apis), strict=True):
                await registered(other, peer.conn_id, room)
            r = await apis[1].get(f"/websocket/rooms/{room}")
            assert r.json()["room"] == {"id": room, "type": "group", "name": f"Group: {group}",
                                        "member_count": 2}, r.text
    finally:
        await raw.aclose()
        await close_all(*peers)


async def outage_on_one_gateway(make_cluster: ClusterFactory, redis_server: RedisServer,
                                ) -> tuple[Cluster, Peer, Peer, str]:
    """One gateway, two members of a group on it, and Redis stopped (status says so)."""
    cluster = make_cluster(1)
    group = uid("g")
    first = await join(cluster.gateways[0], uid("a"), [group])
    second = await join(cluster.gateways[0], uid("b"), [group])
    await first.expect("room_update")  # second joined
    redis_server.stop()
    async with clients(cluster) as (api,):

        async def unhealthy() -> bool | None:
            return True if (await status(api))[1]["status"] == "unhealthy" else None

        await eventually(unhealthy, "status to report the outage")
    return cluster, first, second, f"group:{group}"


async def test_a_message_refused_in_the_outage_gets_its_reply_by_id(
    make_cluster: ClusterFactory, redis_server: RedisServer
) -> None:
    _, first, second, room = await outage_on_one_gateway(make_cluster, redis_server)
    try:
        mid = uid("m")
        await first.send({"id": mid, "type": "message", "room": room, "data": {"text": "x"}})
        got = await collect(first, lambda m: m.get("id") == mid or m["type"] == "error")
        # The React client waits for a reply with its id: an error without it is a timeout.
        assert got[-1]["type"] == "error" and got[-1]["id"] == mid, got[-1]
        assert got[-1]["data"]["code"] == "unavailable", got[-1]
    finally:
        await close_all(first, second)


async def test_a_connection_closing_in_the_outage_is_announced_locally(
    make_cluster: ClusterFactory, redis_server: RedisServer
) -> None:
    cluster, first, second, room = await outage_on_one_gateway(make_cluster, redis_server)
    gw = cluster.gateways[0]
    try:
        await second.close()

        async def handled() -> str | None:
            # The handler ends with a 'disconnect' line, or aiohttp logs its exception.
            log = gw.log()
            done = (f'"disconnect","conn":"{second.conn_id}"' in log
                    or "Error handling request" in log)
            return log if done else None

        log = await eventually(handled, "the gateway to finish handling the close")
        assert "Error handling request" not in log
        update = await first.expect("room_update")
        assert update["room"] == room and update["data"]["action"] == "member_left", update
        assert update["data"]["connection_id"] == second.conn_id
    finally:
        await close_all(first, second)
