"""Token lifetime of live connections: the expiry warning, the 3401 close, in-band refresh."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import jwt
import pytest
from websockets.exceptions import ConnectionClosed

from tests.conftest import GatewayFactory
from tests.core.support import ping, unique
from tests.helpers.gateway import GatewayProcess
from tests.helpers.tokens import make_token, raw_token
from tests.helpers.ws import TIMEOUT, Message, Peer, connect_peer

#: Warned 2 s ahead; no leeway, so a short token's connection closes soon after its exp.
LIFETIME_ENV = {"ROOMCAST_EXPIRY_WARNING": "2", "ROOMCAST_JWT_LEEWAY": "0"}


@pytest.fixture(scope="module")
def short_lived() -> Iterator[GatewayProcess]:
    gw = GatewayProcess(env=LIFETIME_ENV).start()
    yield gw
    gw.close()


async def closed_code(peer: Peer) -> int:
    """The close code the server sent, once the socket closes (messages are skipped)."""
    try:
        while True:
            await peer.recv(timeout=TIMEOUT)
    except ConnectionClosed as exc:
        assert exc.rcvd is not None
        return exc.rcvd.code


def is_warning(msg: Message) -> bool:
    data = msg.get("data")
    return msg.get("type") == "system" and isinstance(data, dict) and (
        data.get("action") == "token_expiring")


async def refresh(peer: Peer, token: str) -> Message:
    return await peer.request({"id": unique("refresh"), "type": "system",
                               "data": {"action": "refresh", "token": token}})


async def test_an_expiring_token_is_warned_then_closed_with_3401(
    short_lived: GatewayProcess,
) -> None:
    user = unique("exp")
    peer = await connect_peer(short_lived, user, ttl=3)
    warning = await peer.expect(is_warning)
    assert 0 <= warning["data"]["expires_in"] <= 3
    assert warning["data"]["expires_at"].endswith("Z")
    assert await closed_code(peer) == 3401
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        metrics = (await http.get(f"{short_lived.base_url}/metrics")).text
    assert 'roomcast_token_closes_total{reason="expired"}' in metrics
    assert "eyJ" not in short_lived.log()  # no token in the logs


async def test_a_refresh_for_the_same_user_keeps_the_connection_past_the_old_exp(
    short_lived: GatewayProcess,
) -> None:
    user = unique("fresh")
    peer = await connect_peer(short_lived, user, ttl=3, groups=["red"])
    # Its twin with the same short token is the clock: once it is closed, the old exp
    # plus leeway has passed for both.
    twin = await connect_peer(short_lived, user, ttl=3, groups=["red"])
    await peer.expect(is_warning)
    reply = await refresh(peer, make_token(short_lived.secret, user, ttl=600, groups=["blue"]))
    assert reply["type"] == "system" and reply["data"]["action_requested"] == "refresh", reply
    assert reply["data"]["expires_in"] > 500
    # The token's groups changed: red left and blue joined at once (before the ack).
    assert peer.rooms == {f"user:{user}", "group:blue"}
    assert await closed_code(twin) == 3401
    await ping(peer)
    assert peer.rooms == {f"user:{user}", "group:blue"}
    await peer.close()


@pytest.mark.parametrize("case", ["other_user", "expired", "bad_signature", "malformed_token"])
async def test_a_refused_refresh_answers_why_and_keeps_the_connection(
    short_lived: GatewayProcess, case: str
) -> None:
    user = unique("refused")
    peer = await connect_peer(short_lived, user, ttl=600)
    token = {
        "other_user": make_token(short_lived.secret, unique("mallory"), ttl=600),
        "expired": raw_token(short_lived.secret, {"user_id": user,
                                                  "exp": int(time.time()) - 60}),
        "bad_signature": make_token("x" * 32 + "another-secret", user, ttl=600),
        "malformed_token": "not-a-jwt",
    }[case]
    reply = await refresh(peer, token)
    assert reply["type"] == "error", reply
    assert reply["data"]["code"] == "unauthorized" and reply["data"]["reason"] == case, reply
    assert reply["data"]["temporary"] is False
    await ping(peer)
    assert peer.rooms == {f"user:{user}"}
    await peer.close()


async def test_a_refresh_without_a_token_is_an_invalid_field(short_lived: GatewayProcess) -> None:
    peer = await connect_peer(short_lived, unique("notoken"), ttl=600)
    reply = await peer.request({"id": "r1", "type": "system", "data": {"action": "refresh"}})
    assert reply["type"] == "error" and reply["data"]["code"] == "invalid_field", reply
    await ping(peer)
    await peer.close()


async def test_expiry_can_be_turned_off(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory({**LIFETIME_ENV, "ROOMCAST_TOKEN_EXPIRY": "off"})
    user = unique("forever")
    token = make_token(gw.secret, user, ttl=2)
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    peer = await connect_peer(gw, user, token=token)
    # Nothing to await here (the point is that nothing happens): look past exp.
    await asyncio.sleep(max(0.0, exp + 1 - time.time()))
    await ping(peer)
    assert not any(is_warning(m) for m in await drain(peer))
    await peer.close()


async def drain(peer: Peer) -> list[Message]:
    """Everything queued for ``peer`` before a fresh ping's pong."""
    seen = []
    mid = unique("drain")
    await peer.send({"id": mid, "type": "system", "data": {"action": "ping"}})
    while (msg := await peer.recv()).get("id") != mid:
        seen.append(msg)
    return seen
