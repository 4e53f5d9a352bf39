"""Handshake: Bearer then cookie, HS256 with exp, iss when configured; Origin allow-list."""

from __future__ import annotations

import base64
import json
import time
import warnings
from typing import Any

import httpx
import jwt
import pytest

from tests.conftest import GatewayFactory
from tests.core.support import bearer, cookie, open_peer, ping, refused_status, unique
from tests.helpers.gateway import GatewayProcess
from tests.helpers.tokens import make_token, raw_token


def _b64(obj: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _claims(user: str, **extra: Any) -> dict[str, Any]:
    return {"user_id": user, "exp": int(time.time()) + 600, **extra}


def _bad_tokens(secret: str) -> dict[str, str]:
    user = unique("mallory")
    good = make_token(secret, user)
    header, payload, signature = good.split(".")
    forged = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged["user_id"] = "someone-else"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyJWT may warn that the key is short for HS512
        hs512 = raw_token(secret, _claims(user), algorithm="HS512")
    return {
        "expired": raw_token(secret, {"user_id": user, "exp": int(time.time()) - 60}),
        "tampered": f"{header}.{_b64(forged)}.{signature}",
        "wrongly signed": make_token("another-secret-that-is-long-enough-for-hs256", user),
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(user))}.",
        "alg none with signature": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.{signature}",
        "HS512": hs512,
        "missing exp": raw_token(secret, {"user_id": user}),
        "missing user_id": raw_token(secret, {"exp": int(time.time()) + 600}),
        "user_id not a string": raw_token(secret, _claims(user, user_id=42)),
        "exp not a number": raw_token(secret, {"user_id": user, "exp": "tomorrow"}),
        "garbage": "not.a.jwt",
        "two segments": f"{header}.{payload}",
        "groups claim not a list": raw_token(secret, _claims(user, groups="red")),
    }


BAD_TOKEN_NAMES = list(_bad_tokens("x" * 64))


# -- accepted ---------------------------------------------------------------------


async def test_bearer_token(gateway: GatewayProcess) -> None:
    user = unique("bearer")
    peer = await open_peer(gateway, rooms=1, headers=bearer(make_token(gateway.secret, user)))
    try:
        assert peer.welcome["data"]["user_id"] == user
        assert peer.rooms == {f"user:{user}"}
        await ping(peer)
    finally:
        await peer.close()


async def test_cookie_token(gateway: GatewayProcess) -> None:
    user = unique("cookie")
    peer = await open_peer(gateway, rooms=1, headers=cookie(make_token(gateway.secret, user)))
    try:
        assert peer.welcome["data"]["user_id"] == user
    finally:
        await peer.close()


async def test_bearer_wins_over_cookie(gateway: GatewayProcess) -> None:
    by_bearer, by_cookie = unique("bearer-user"), unique("cookie-user")
    headers = {**bearer(make_token(gateway.secret, by_bearer)),
               **cookie(make_token(gateway.secret, by_cookie))}
    peer = await open_peer(gateway, rooms=1, headers=headers)
    try:
        assert peer.welcome["data"]["user_id"] == by_bearer
    finally:
        await peer.close()


async def test_an_invalid_bearer_is_not_rescued_by_a_valid_cookie(gateway: GatewayProcess) -> None:
    headers = {**bearer("not.a.jwt"), **cookie(make_token(gateway.secret, unique("c")))}
    assert await refused_status(gateway, headers) == 401


async def test_foreign_issuer_is_accepted_when_no_issuer_is_configured(
    gateway: GatewayProcess,
) -> None:
    token = raw_token(gateway.secret, _claims(unique("iss"), iss="somebody-else"))
    peer = await open_peer(gateway, rooms=1, headers=bearer(token))
    await peer.close()


# -- refused: 401, no upgrade ----------------------------------------------------------


async def test_missing_token(gateway: GatewayProcess) -> None:
    assert await refused_status(gateway) == 401


@pytest.mark.parametrize("header", ["Bearer", "Bearer   ", "Basic dXNlcjpwYXNz", "Token abc"])
async def test_malformed_authorization_header(gateway: GatewayProcess, header: str) -> None:
    assert await refused_status(gateway, {"Authorization": header}) == 401


@pytest.mark.parametrize("name", BAD_TOKEN_NAMES)
async def test_bad_bearer_token(gateway: GatewayProcess, name: str) -> None:
    token = _bad_tokens(gateway.secret)[name]
    assert await refused_status(gateway, bearer(token)) == 401


@pytest.mark.parametrize("name", ["expired", "tampered", "wrongly signed", "alg none"])
async def test_bad_cookie_token(gateway: GatewayProcess, name: str) -> None:
    token = _bad_tokens(gateway.secret)[name]
    assert await refused_status(gateway, cookie(token)) == 401


async def test_the_gateway_survives_bad_handshakes(gateway: GatewayProcess) -> None:
    for token in _bad_tokens(gateway.secret).values():
        assert await refused_status(gateway, bearer(token)) == 401
    peer = await open_peer(gateway, rooms=1,
                           headers=bearer(make_token(gateway.secret, unique("after"))))
    await ping(peer)
    await peer.close()


async def test_issuer_is_checked_when_configured(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(env={"JWT_ISSUER": "go-falcon"})
    user = unique("iss")
    assert await refused_status(gw, bearer(raw_token(gw.secret, _claims(user, iss="evil")))) == 401
    no_iss = jwt.encode(_claims(user), gw.secret, algorithm="HS256")
    assert await refused_status(gw, bearer(no_iss)) == 401
    peer = await open_peer(gw, rooms=1, headers=bearer(make_token(gw.secret, user)))
    assert peer.welcome["data"]["user_id"] == user
    await peer.close()


# -- Origin -------------------------------------------------------------------


ALLOWED = "https://app.example.com,https://admin.example.org"


@pytest.fixture(scope="module")
def origin_gateway() -> Any:
    gw = GatewayProcess(env={"WEBSOCKET_ALLOWED_ORIGINS": ALLOWED}).start()
    yield gw
    gw.close()


@pytest.mark.parametrize("origin", [
    "https://evil.example.net", "http://app.example.com", "https://app.example.com:8443",
    "https://app.example.com.evil.net", "null", "http://localhost",
])
async def test_wrong_origin_is_403(origin_gateway: GatewayProcess, origin: str) -> None:
    token = make_token(origin_gateway.secret, unique("o"))
    assert await refused_status(origin_gateway, bearer(token), origin=origin) == 403


async def test_wrong_origin_with_the_cookie_is_403(origin_gateway: GatewayProcess) -> None:
    # Go gateway flaw: cross-site WebSocket hijacking rides on the browser's cookie.
    token = make_token(origin_gateway.secret, unique("o"))
    assert await refused_status(origin_gateway, cookie(token),
                                origin="https://evil.example.net") == 403


@pytest.mark.parametrize("origin", ["https://app.example.com", "https://admin.example.org",
                                    "https://APP.example.com"])
async def test_listed_origin_is_accepted(origin_gateway: GatewayProcess, origin: str) -> None:
    token = make_token(origin_gateway.secret, unique("o"))
    peer = await open_peer(origin_gateway, rooms=1, headers=cookie(token), origin=origin)
    await ping(peer)
    await peer.close()


async def test_same_origin_is_accepted(origin_gateway: GatewayProcess) -> None:
    token = make_token(origin_gateway.secret, unique("o"))
    peer = await open_peer(origin_gateway, rooms=1, headers=cookie(token),
                           origin=origin_gateway.base_url)
    await peer.close()


async def test_no_origin_is_accepted(origin_gateway: GatewayProcess) -> None:
    token = make_token(origin_gateway.secret, unique("o"))
    peer = await open_peer(origin_gateway, rooms=1, headers=bearer(token))
    await peer.close()


async def test_without_a_list_only_the_own_origin_is_accepted(gateway: GatewayProcess) -> None:
    token = make_token(gateway.secret, unique("o"))
    assert await refused_status(gateway, bearer(token), origin="https://app.example.com") == 403
    peer = await open_peer(gateway, rooms=1, headers=bearer(token), origin=gateway.base_url)
    await peer.close()


async def test_plain_get_without_upgrade(gateway: GatewayProcess) -> None:
    token = make_token(gateway.secret, unique("http"))
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(gateway.ws_url.replace("ws://", "http://"))).status_code == 401
        resp = await http.get(gateway.ws_url.replace("ws://", "http://"), headers=bearer(token))
    assert resp.status_code == 426


async def test_a_broken_upgrade_request_is_refused_with_426(gateway: GatewayProcess) -> None:
    token = make_token(gateway.secret, unique("badkey"))
    headers = {**bearer(token), "Upgrade": "websocket", "Connection": "Upgrade",
               "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "not-a-key"}
    async with httpx.AsyncClient(timeout=10) as http:
        resp = await http.get(gateway.ws_url.replace("ws://", "http://"), headers=headers)
    assert resp.status_code == 426
    assert resp.json()["code"] == "upgrade_required"
