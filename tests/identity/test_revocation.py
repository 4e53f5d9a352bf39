"""Logout everywhere, sticky kicks and the browser's cookie refresh route.

Across two instances on a test-started Redis: a revocation closes the user's
connections on both with 3403, refuses the older tokens at every handshake and refresh,
and still does after a gateway restart; kicks with a duration keep the token or the
user out; a fresh cookie posted to one instance refreshes a connection on the other.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.cluster.support import API_KEY, Cluster
from tests.conftest import GatewayFactory
from tests.core.support import ping, unique
from tests.helpers.gateway import GatewayProcess
from tests.helpers.redis_server import RedisServer
from tests.helpers.tokens import make_token, raw_token
from tests.helpers.ws import TIMEOUT, connect_peer
from tests.identity.support import ACCEPTED, verdict
from tests.identity.test_lifetime import closed_code, refresh


@pytest.fixture
def pair(redis_server: RedisServer) -> Iterator[Cluster]:
    """Two gateways of this test on its own Redis."""
    c = Cluster(redis_server, 2).start()
    yield c
    c.close()


def api(gw: GatewayProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=gw.base_url, timeout=TIMEOUT,
                             headers={"X-API-Key": API_KEY})


def later_token(secret: str, user: str, **claims: object) -> str:
    """A token issued a second after now: after a revocation made now."""
    now = int(time.time())
    return raw_token(secret, {"user_id": user, "iat": now + 1, "exp": now + 600, **claims})


async def metrics_of(gw: GatewayProcess) -> str:
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        return (await http.get(f"{gw.base_url}/metrics")).text


async def test_a_revocation_closes_every_connection_and_outlives_a_restart(pair: Cluster) -> None:
    gw0, gw1 = pair.gateways
    user, bystander = unique("alice"), unique("bob")
    old = make_token(pair.secret, user, ttl=600)
    a0 = await connect_peer(gw0, user, token=old)
    a1 = await connect_peer(gw1, user, token=old)
    bob = await connect_peer(gw1, bystander)
    async with api(gw0) as http:
        r = await http.post(f"/websocket/users/{user}/revoke")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True and body["user_id"] == user and body["revoked_at"]
    assert await closed_code(a0) == 3403
    assert await closed_code(a1) == 3403
    await ping(bob)
    for gw in (gw0, gw1):
        assert await verdict(gw, old) == (401, "revoked")
        assert await verdict(gw, later_token(pair.secret, user)) == ACCEPTED
    # A token issued before the revocation cannot come back in through a refresh either.
    fresh = await connect_peer(gw1, user, token=later_token(pair.secret, user))
    reply = await refresh(fresh, old)
    assert reply["type"] == "error" and reply["data"]["reason"] == "revoked", reply
    await ping(fresh)
    await fresh.close()
    # Kept in Redis: the restarted instance refuses the old token too.
    gw1.restart()
    assert await verdict(gw1, old) == (401, "revoked")
    assert await verdict(gw1, later_token(pair.secret, user)) == ACCEPTED
    assert 'roomcast_token_closes_total{reason="revoked"} 1.0' in await metrics_of(gw0)
    assert 'roomcast_handshake_refusals_total{reason="revoked"}' in await metrics_of(gw1)
    for gw in (gw0, gw1):
        assert old not in gw.log()
    await bob.close()


async def test_a_kick_with_a_duration_sticks_cluster_wide(pair: Cluster) -> None:
    gw0, gw1 = pair.gateways
    user = unique("kicked")
    first, second = make_token(pair.secret, user, ttl=600), make_token(pair.secret, user, ttl=601)
    kicked = await connect_peer(gw1, user, token=first)
    other = await connect_peer(gw1, user, token=second)
    async with api(gw0) as http:
        r = await http.post(f"/websocket/connections/{kicked.conn_id}/disconnect",
                            json={"ban_seconds": 300})
        assert r.status_code == 200, r.text
        assert r.json()["ban"] == "token" and r.json()["banned_until"]
        assert await closed_code(kicked) == 3500
        # That token is refused on both instances, with how long to wait; the user's
        # other token still works.
        for gw in (gw0, gw1):
            status, reason, retry = await refusal(gw, first)
            assert (status, reason) == (403, "kicked") and 250 < int(retry) <= 300
        assert await verdict(gw0, second) == ACCEPTED
        await ping(other)
        # ban: user closes every connection of the user and keeps every token out.
        r = await http.post(f"/websocket/connections/{other.conn_id}/disconnect",
                            json={"ban_seconds": 60, "ban": "user"})
        assert r.status_code == 200 and r.json()["ban"] == "user", r.text
        assert await closed_code(other) == 3500
        assert (await refusal(gw0, make_token(pair.secret, user)))[:2] == (403, "kicked")
        # Without a duration, a kick is what it was: the client may come straight back.
        free = unique("free")
        token = make_token(pair.secret, free)
        peer = await connect_peer(gw0, free, token=token)
        r = await http.post(f"/websocket/connections/{peer.conn_id}/disconnect")
        assert r.status_code == 200 and "ban" not in r.json(), r.text
        assert await closed_code(peer) == 3500
        assert await verdict(gw1, token) == ACCEPTED
    assert 'roomcast_handshake_refusals_total{reason="kicked"}' in await metrics_of(gw0)
    assert "handshake_refused" in gw1.log() and '"reason":"kicked"' in gw1.log()


async def refusal(gw: GatewayProcess, token: str) -> tuple[int, str | None, str]:
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        resp = await http.get(gw.ws_url.replace("ws", "http", 1),
                              headers={"Authorization": f"Bearer {token}"})
    return resp.status_code, resp.json().get("reason"), resp.headers.get("Retry-After", "")


async def test_a_fresh_cookie_refreshes_a_connection_on_another_instance(pair: Cluster) -> None:
    gw0, gw1 = pair.gateways
    user = unique("cookie")
    cookie_token = make_token(pair.secret, user, ttl=600)
    peer = await connect_peer(gw1, user, token=cookie_token)
    fresh = make_token(pair.secret, user, ttl=900, groups=["green"])
    async with httpx.AsyncClient(base_url=gw0.base_url, timeout=TIMEOUT) as http:
        r = await http.post("/websocket/token/refresh", json={"connection_ids": [peer.conn_id]},
                            headers={"Cookie": f"falcon_auth_token={fresh}",
                                     "Origin": gw0.base_url})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["connection_ids"] == [peer.conn_id]
        # Described like every other answer of the API.
        assert body["$schema"].endswith("/schemas/Refreshed.json"), body
        assert (await http.get("/schemas/Refreshed.json")).json()["required"] == [
            "user_id", "connection_ids", "expires_at"]
        await peer.expect(lambda m: m.get("type") == "room_joined" and m["room"] == "group:green")
        # The CSRF guard of the admin API: cross-site Origin, or a form post.
        r = await http.post("/websocket/token/refresh", json={"connection_ids": [peer.conn_id]},
                            headers={"Cookie": f"falcon_auth_token={fresh}",
                                     "Origin": "https://evil.example"})
        assert r.status_code == 403 and r.json()["reason"] == "cross_site", r.text
        r = await http.post("/websocket/token/refresh", content=b"connection_ids=x",
                            headers={"Cookie": f"falcon_auth_token={fresh}",
                                     "Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 415, r.text
        # Another user's cookie cannot touch the connection; an expired one is refused.
        mallory = make_token(pair.secret, unique("mallory"))
        r = await http.post("/websocket/token/refresh", json={"connection_ids": [peer.conn_id]},
                            headers={"Cookie": f"falcon_auth_token={mallory}"})
        assert r.status_code == 404, r.text
        expired = raw_token(pair.secret, {"user_id": user, "exp": int(time.time()) - 60})
        r = await http.post("/websocket/token/refresh", json={"connection_ids": [peer.conn_id]},
                            headers={"Cookie": f"falcon_auth_token={expired}"})
        assert r.status_code == 401 and r.json()["reason"] == "expired", r.text
        assert r.headers["content-type"].startswith("application/problem+json")
    await ping(peer)
    assert peer.rooms == {f"user:{user}", "group:green"}
    await peer.close()


async def test_without_redis_a_revocation_is_kept_in_the_sqlite_file(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory({"ROOMCAST_API_KEY": API_KEY})
    user = unique("solo")
    old = make_token(gw.secret, user)
    peer = await connect_peer(gw, user, token=old)
    async with api(gw) as http:
        r = await http.post(f"/websocket/users/{user}/revoke")
    assert r.status_code == 200 and r.json()["connections"] == 1, r.text
    assert await closed_code(peer) == 3403
    assert await verdict(gw, old) == (401, "revoked")
    assert await verdict(gw, later_token(gw.secret, user)) == ACCEPTED
    # A kick's token ban too; both outlive a restart of the instance.
    banned_user = unique("banned")
    banned = make_token(gw.secret, banned_user)
    kicked = await connect_peer(gw, banned_user, token=banned)
    async with api(gw) as http:
        r = await http.post(f"/websocket/connections/{kicked.conn_id}/disconnect",
                            json={"ban_seconds": 600})
    assert r.status_code == 200, r.text
    assert await closed_code(kicked) == 3500
    gw.restart()
    assert await verdict(gw, old) == (401, "revoked")
    assert await verdict(gw, banned) == (403, "kicked")
    assert await verdict(gw, later_token(gw.secret, user)) == ACCEPTED


async def _verdicts_together(gw: GatewayProcess, tokens: list[str]) -> list[tuple[int, str | None]]:
    """Handshakes made at once: the gateway checks them in shared store calls."""
    return list(await asyncio.gather(*(verdict(gw, t) for t in tokens)))


async def test_handshakes_checked_together_each_get_their_own_verdict(pair: Cluster) -> None:
    gw0, gw1 = pair.gateways
    revoked, kicked = unique("revoked"), unique("kicked")
    others = [unique("other") for _ in range(6)]
    old = make_token(pair.secret, revoked, ttl=600)
    banned = make_token(pair.secret, kicked, ttl=600)
    held = await connect_peer(gw0, kicked, token=banned)
    async with api(gw1) as http:
        assert (await http.post(f"/websocket/users/{revoked}/revoke")).status_code == 200
        r = await http.post(f"/websocket/connections/{held.conn_id}/disconnect",
                            json={"ban_seconds": 600})
        assert r.status_code == 200, r.text
    assert await closed_code(held) == 3500
    tokens = [make_token(pair.secret, u) for u in others]
    mixed = [tokens[0], old, tokens[1], banned, *tokens[2:], old, banned]
    expected = [ACCEPTED, (401, "revoked"), ACCEPTED, (403, "kicked"),
                *[ACCEPTED] * 4, (401, "revoked"), (403, "kicked")]
    for gw in (gw0, gw1):
        assert await _verdicts_together(gw, mixed) == expected
    # A revocation made now applies to the very next handshakes, checked together or not.
    victim = others[0]
    async with api(gw0) as http:
        assert (await http.post(f"/websocket/users/{victim}/revoke")).status_code == 200
    for gw in (gw1, gw0):
        assert (await _verdicts_together(gw, tokens))[0] == (401, "revoked")
        assert (await _verdicts_together(gw, tokens))[1:] == [ACCEPTED] * 5


async def test_without_redis_handshakes_checked_together_each_get_their_own_verdict(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory({"ROOMCAST_API_KEY": API_KEY})
    revoked = unique("solo")
    old = make_token(gw.secret, revoked)
    async with api(gw) as http:
        assert (await http.post(f"/websocket/users/{revoked}/revoke")).status_code == 200
    fine = [make_token(gw.secret, unique("fine")) for _ in range(5)]
    got = await _verdicts_together(gw, [old, *fine, old])
    assert got == [(401, "revoked"), *[ACCEPTED] * 5, (401, "revoked")]


async def test_without_redis_a_revocation_by_another_process_on_the_file_applies_at_once(
    gateway_factory: GatewayFactory,
) -> None:
    # Each instance answers handshakes from its copy of the denials: a write to the
    # shared file by another process must still refuse the next handshake here.
    first = gateway_factory({"ROOMCAST_API_KEY": API_KEY})
    second = gateway_factory({"ROOMCAST_API_KEY": API_KEY, "JWT_SECRET": first.secret,
                              "ROOMCAST_DB": first.env["ROOMCAST_DB"]})
    user = unique("shared")
    old = make_token(first.secret, user)
    assert await verdict(second, old) == ACCEPTED
    async with api(first) as http:
        assert (await http.post(f"/websocket/users/{user}/revoke")).status_code == 200
    assert await verdict(second, old) == (401, "revoked")
    assert await verdict(second, later_token(first.secret, user)) == ACCEPTED
    banned_user = unique("banned")
    banned, other = make_token(first.secret, banned_user, ttl=600), \
        make_token(first.secret, banned_user, ttl=601)
    kicked = await connect_peer(second, banned_user, token=banned)
    async with api(second) as http:
        r = await http.post(f"/websocket/connections/{kicked.conn_id}/disconnect",
                            json={"ban_seconds": 600})
    assert r.status_code == 200, r.text
    assert await closed_code(kicked) == 3500
    # The kick's ban of that token was written through the second: the first refuses it.
    assert await verdict(first, banned) == (403, "kicked")
    assert await verdict(first, other) == ACCEPTED
