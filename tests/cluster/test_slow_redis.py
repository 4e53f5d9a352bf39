"""A Redis that stalls (busy, not down) or starts late: still each message at most once.

A PUBLISH that outlives the broker's 1 s command timeout may still run once Redis wakes
up, so the broker never sends it again: the sender is told the other instances may or
may not have it, and every other connection gets exactly one copy. A second copy of a
publication that does arrive (someone else re-sent it) is dropped by every receiver.

Each test has its own Redis, which it stalls. Nothing is timed: the stall lasts until
the publisher has answered, and ends by an explicit command or signal.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import redis.asyncio as aioredis
from websockets.exceptions import InvalidStatus

from tests.cluster.support import (
    MESSAGES,
    ROOMS,
    api_client,
    barrier,
    close_all,
    eventually,
    go_message,
    go_payload,
    join,
    registered,
    uid,
    with_text,
)
from tests.helpers.fixtures_redis import ClusterFactory
from tests.helpers.gateway import GatewayProcess
from tests.helpers.problems import problem
from tests.helpers.redis_server import RedisServer
from tests.helpers.ws import Peer, connect_peer

pytestmark = pytest.mark.redis

TRIALS = 3
#: Longest pause: lifted by the test long before (a failed test must not leave it).
PAUSE_MS = 60_000
#: Keeps Redis busy (one script at a time) for 1.5 s, past the broker's 1 s timeout.
BUSY_SCRIPT = """
local t = redis.call('TIME')
local start = t[1] * 1000000 + t[2]
repeat
  local now = redis.call('TIME')
until now[1] * 1000000 + now[2] - start >= 1500000
return 1
"""
#: Bound of the waits for a gateway to reach Redis (the listener backs off up to 5 s).
RECOVERY = 60.0


@dataclass
class Stage:
    """Two instances, a member of one room on each, and a plain Redis client."""

    gateways: list[GatewayProcess]
    raw: aioredis.Redis
    room: str
    near: Peer  # on the first instance
    far: Peer  # on the second


@pytest.fixture
async def stage(redis_cluster: ClusterFactory,
                redis_server: RedisServer) -> AsyncIterator[Stage]:
    a, b = redis_cluster().gateways
    raw = aioredis.Redis.from_url(redis_server.url)
    group = uid("g")
    room = f"group:{group}"
    near, far = await join(a, uid("near"), [group]), await join(b, uid("far"), [group])
    try:
        async with api_client(a) as api:
            await registered(api, far.conn_id, room)
        await barrier(raw, near, far)
        yield Stage([a, b], raw, room, near, far)
    finally:
        await raw.aclose()
        await close_all(near, far)


async def copies(raw: aioredis.Redis, peer: Peer, text: str) -> int:
    """How many copies of ``text`` the peer has, once the first one arrived.

    The barrier is published after Redis ran every command sent before it, so a
    second copy would be among the messages before it.
    """
    first = await peer.expect(lambda m: with_text([m], text) != [])
    (before,) = await barrier(raw, peer)
    return len(with_text([first, *before], text))


async def stall_after_publish_arrives(raw: aioredis.Redis) -> None:
    """Keep Redis busy for 1.5 s once a PUBLISH is waiting in it, then run that PUBLISH.

    Redis holds write commands under ``CLIENT PAUSE WRITE`` (reads still answer). Once
    a PUBLISH is held, one transaction lifts the pause and runs a 1.5 s script: Redis
    is busy past the publisher's 1 s timeout, then executes the held PUBLISH.
    """

    async def held() -> bool | None:
        clients = await raw.client_list()
        return True if any(c.get("cmd") == "publish" and "b" in c.get("flags", "")
                           for c in clients) else None

    await eventually(held, "a PUBLISH held by the pause")
    async with raw.pipeline(transaction=True) as tx:
        tx.client_unpause()
        tx.eval_ro(BUSY_SCRIPT, 0)
        await tx.execute()


async def test_an_api_publish_outliving_the_timeout_reaches_the_other_instance_once(
    stage: Stage,
) -> None:
    """To a connection on the other instance: the API's lookups are reads, which the
    pause lets through, so the stall hits the PUBLISH."""
    raw, far = stage.raw, stage.far
    url = f"/websocket/connections/{far.conn_id}/message"
    async with api_client(stage.gateways[0]) as api:
        for trial in range(TRIALS):
            text = uid(f"stalled{trial}")
            await raw.client_pause(PAUSE_MS, all=False)  # WRITE
            try:
                post = asyncio.create_task(api.post(
                    url, json={"type": "notification", "data": {"text": text}}))
                await stall_after_publish_arrives(raw)
                r = await post
            finally:
                await raw.client_unpause()
            assert await copies(raw, far, text) == 1, f"trial {trial}"
            # Honest: neither "sent" nor "unavailable, retry": it may have arrived.
            body = problem(r, 504, "delivery_unknown")
            assert "may or may not" in body["detail"], body
            assert "Retry-After" not in r.headers
        # And the publish path works normally afterwards.
        text = uid("after")
        r = await api.post(url, json={"type": "notification", "data": {"text": text}})
        assert r.status_code == 200, r.text
        assert await copies(raw, far, text) == 1


async def test_a_client_publish_while_redis_is_stopped_reaches_each_instance_once(
    stage: Stage, redis_server: RedisServer
) -> None:
    """Redis stalled whole (SIGSTOP): even a new connection would be accepted and hang."""
    raw, room, near, far = stage.raw, stage.room, stage.near, stage.far
    for trial in range(TRIALS):
        # A publish first, so the instance holds an open connection to Redis: a new
        # one would stall in its handshake, before the PUBLISH is sent (then the
        # error says "only on this instance", which is true).
        warm = uid("warm")
        ack = await near.request({"id": uid("w"), "type": "message", "room": room,
                                  "data": {"text": warm}})
        assert ack["type"] == "system", ack
        assert await copies(raw, far, warm) == 1
        text, mid = uid(f"frozen{trial}"), uid("m")
        redis_server.pause()
        try:
            reply = await near.request({"id": mid, "type": "message", "room": room,
                                        "data": {"text": text}})
        finally:
            redis_server.resume()
        assert await copies(raw, far, text) == 1, f"trial {trial}"
        assert reply["type"] == "error", reply
        assert reply["data"]["code"] == "unavailable", reply
        assert "may or may not" in reply["data"]["message"], reply


async def test_a_publication_received_twice_is_delivered_once(stage: Stage) -> None:
    """Another publisher re-sends a PUBLISH (its reply was lost): receivers drop it."""
    raw, room, near, far = stage.raw, stage.room, stage.near, stage.far
    twice = go_message("notification", room=room)
    other = go_message("notification", room=room)  # same text, another id: not a copy
    other["data"] = twice["data"]
    for payload in (go_payload(twice), go_payload(twice), go_payload(other)):
        await raw.publish(ROOMS, payload)
    # The same id from another publisher is another publication, too.
    await raw.publish(ROOMS, go_payload(twice, server_id=str(uid("go"))))
    text = twice["data"]["text"]
    for peer in (near, far):
        (got,) = await barrier(raw, peer)
        assert len(with_text(got, text)) == 3, got
        assert [m["id"] for m in with_text(got, text)] == [
            twice["id"], other["id"], twice["id"]]
    for gw in stage.gateways:
        async with httpx.AsyncClient(base_url=gw.base_url) as http:
            metrics = (await http.get("/metrics")).text
        assert "roomcast_broker_duplicates_dropped_total 1.0" in metrics, metrics
    # Direct messages are deduplicated the same way.
    direct = go_message("notification", to=far.conn_id)
    await raw.publish(MESSAGES, go_payload(direct))
    await raw.publish(MESSAGES, go_payload(direct))
    (got,) = await barrier(raw, far)
    assert [m["id"] for m in got] == [direct["id"]], got


async def test_a_gateway_started_while_redis_is_down_serves_once_redis_starts(
    redis_cluster: ClusterFactory, redis_server: RedisServer,
) -> None:
    redis_server.stop()
    cluster = redis_cluster(1)  # comes up all the same
    raw: aioredis.Redis | None = None
    peers: list[Peer] = []
    try:
        (gw,) = cluster.gateways
        async with api_client(gw) as api:
            ready = await api.get("/readyz")
            assert ready.status_code == 503, ready.text
            assert ready.json()["status"] == "not ready"
            assert (await api.get("/healthz")).status_code == 200
            # No memberships can be read: a connection is refused, not half-joined.
            with pytest.raises(InvalidStatus) as refused:
                await connect_peer(gw, uid("early"))
            assert refused.value.response.status_code == 503

            redis_server.start()  # the same port

            async def is_ready() -> bool | None:
                return True if (await api.get("/readyz")).status_code == 200 else None

            await eventually(is_ready, "the gateway to be ready", RECOVERY)
            group = uid("g")
            room = f"group:{group}"
            peers.append(await join(gw, uid("late"), [group]))
            text = uid("hello")
            r = await api.post(f"/websocket/rooms/{room}/message",
                               json={"type": "notification", "data": {"text": text}})
            assert r.status_code == 200, r.text
            raw = aioredis.Redis.from_url(redis_server.url)
            (got,) = await barrier(raw, peers[0])
            assert len(with_text(got, text)) == 1, got
            # Membership changes are stored in Redis, now reachable.
            r = await api.put(f"/websocket/users/{uid('u')}/groups/{group}")
            assert r.status_code == 200, r.text
    finally:
        if raw is not None:
            await raw.aclose()
        await close_all(*peers)
