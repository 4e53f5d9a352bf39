"""Tokens with claims out of range are refused at the handshake.

A signed token whose ``character_id`` did not fit 64 bits (or whose strings held lone
surrogates) once reached the Redis registry writer, which raised and died: from then on
the instance's connections were missing from the other instances' listings. Now such
tokens get 401 ``bad_claims``, and the registry goes on listing everyone.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.abuse.support import API_KEY, DEADLINE, api_client, eventually, log_events, ping, uid
from tests.helpers.gateway import GatewayProcess
from tests.helpers.redis_server import RedisServer
from tests.helpers.tokens import raw_token
from tests.helpers.ws import connect_peer

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def pair(redis_server_module: RedisServer) -> Iterator[list[GatewayProcess]]:
    secret = "hostile-claims-secret-0123456789abcdef"
    gws = [GatewayProcess(env={"REDIS_URL": redis_server_module.url, "JWT_SECRET": secret,
                               "ROOMCAST_API_KEY": API_KEY}).start() for _ in range(2)]
    yield gws
    for gw in gws:
        gw.close()


@pytest.fixture
async def other_api(pair: list[GatewayProcess]) -> AsyncIterator[httpx.AsyncClient]:
    client = api_client(pair[1])
    yield client
    await client.aclose()


def hostile(user: str) -> dict[str, dict[str, Any]]:
    exp = int(time.time()) + 600
    base = {"user_id": user, "exp": exp}
    return {
        "character_id 2^64": {**base, "character_id": 2**64},
        "character_id -2^64": {**base, "character_id": -(2**64)},
        "user_id with a lone surrogate": {**base, "user_id": user + "\ud83d"},
        "character_name with a lone surrogate": {**base, "character_name": "x\udc00"},
        "scopes with a lone surrogate": {**base, "scopes": "a \ud800"},
        "group id 2^64": {**base, "groups": [2**64]},
        "group name with a lone surrogate": {**base, "groups": [{"id": "g", "name": "\ud800"}]},
        "exp beyond any date": {**base, "exp": 10**30},
        "a 300-character name": {**base, "character_name": "n" * 300},
        "three hundred groups": {**base, "groups": list(range(300))},
    }


@pytest.mark.parametrize("case", list(hostile("x")))
async def test_out_of_range_claims_are_refused_and_listings_stay_whole(
    pair: list[GatewayProcess], other_api: httpx.AsyncClient, case: str
) -> None:
    first = pair[0]
    token = raw_token(first.secret, hostile(uid("hostile"))[case])
    with pytest.raises(InvalidStatus) as refused:
        ws = await connect(first.ws_url, open_timeout=DEADLINE,
                           additional_headers={"Authorization": f"Bearer {token}"})
        await ws.close()
    assert refused.value.response.status_code == 401
    assert b"bad_claims" in refused.value.response.body

    # The registry writer of the first instance still works: the other instance lists
    # a connection opened there afterwards.
    user = uid("bystander")
    peer = await connect_peer(first, user)
    try:
        await ping(peer)

        async def listed() -> bool | None:
            r = await other_api.get("/websocket/connections", params={"user_id": user})
            return True if r.status_code == 200 and r.json()["total"] == 1 else None

        await eventually(listed, "the bystander listed by the other instance")
    finally:
        await peer.close()
    assert not log_events(first, "task_failed")
