"""A new connection gets its welcome and every ``room_joined`` before any message of its
rooms, in rooms without history too: between becoming a member and those events the
instance writes the registry and counts the rooms, while publications keep arriving."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.cluster.support import DEADLINE, Cluster, api_client, close_all, join, uid
from tests.helpers.redis_server import RedisServer
from tests.helpers.tokens import make_token
from tests.helpers.ws import TIMEOUT, Message, Peer

pytestmark = pytest.mark.redis

#: Connections opened while their rooms are flooded: each has a few milliseconds of window.
JOINS = 10


async def test_every_room_joined_comes_before_the_rooms_messages_without_history(
    redis_server: RedisServer,
) -> None:
    cluster = Cluster(redis_server, 2, ROOMCAST_HISTORY_GROUP_SIZE="0",
                      ROOMCAST_HISTORY_USER_SIZE="0").start()
    a, b = cluster.gateways
    group, user = uid("g"), uid("joiner")
    # Members on B keep both rooms alive (and a user message deliverable) meanwhile.
    keepers = [await join(b, uid("holder"), [group]), await join(b, user, [group])]
    stop = asyncio.Event()
    published = asyncio.Event()

    async def publish(api: httpx.AsyncClient, path: str) -> None:
        while not stop.is_set():
            r = await api.post(path, json={"type": "notification", "data": {"text": "flood"}})
            assert r.status_code == 200, r.text
            published.set()

    try:
        async with api_client(b) as api:
            paths = [f"/websocket/rooms/group:{group}/message", f"/websocket/users/{user}/message"]
            flood = [asyncio.create_task(publish(api, path)) for path in paths * 2]
            try:
                async with asyncio.timeout(DEADLINE):
                    await published.wait()
                for _ in range(JOINS):
                    token = make_token(a.secret, user, groups=[group])
                    async with connect(a.ws_url, max_size=None, max_queue=None,
                                       additional_headers={"Authorization": f"Bearer {token}"},
                                       open_timeout=TIMEOUT) as ws:
                        peer = Peer(ws)
                        first: list[Message] = [await peer.recv() for _ in range(3)]
                        assert [m["type"] for m in first] == [
                            "system_notification", "room_joined", "room_joined"], first
                        assert [m["room"] for m in first[1:]] == [f"user:{user}",
                                                                  f"group:{group}"], first
                        # Live delivery follows them.
                        await peer.expect("notification")
            finally:
                stop.set()
                await asyncio.gather(*flood)
    finally:
        await close_all(*keepers)
        cluster.close()
