"""Behind a TLS-terminating proxy: forwarded headers count only from trusted peers.

The proxy is played by the test itself, from 127.0.0.1 (the address every test
connection comes from), sending what nginx would add.
"""

from __future__ import annotations

import httpx

from tests.conftest import GatewayFactory
from tests.core.support import cookie, eventually, log_events, open_peer, refused_status, unique
from tests.helpers.gateway import GatewayProcess
from tests.helpers.tokens import make_token

APP = "https://app.example"
#: What nginx in front of app.example adds for a browser at 198.51.100.7.
FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "app.example",
             "X-Forwarded-For": "198.51.100.7"}


def _connects(gw: GatewayProcess, user: str) -> list[dict[str, object]]:
    return [e for e in log_events(gw) if e["event"] == "connect" and e.get("user") == user]


async def test_a_browser_behind_a_trusted_proxy_connects_as_its_origin(
        gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(env={"ROOMCAST_TRUSTED_PROXIES": "127.0.0.1/32"})
    user = unique("proxied")
    token = make_token(gw.secret, user)
    # The page is https://app.example; without the proxy's word the gateway believes
    # it is http://127.0.0.1:port, and the same-origin browser would be refused.
    peer = await open_peer(gw, rooms=1, origin=APP, headers={**cookie(token), **FORWARDED})
    await peer.close()
    # RFC 7239 Forwarded says the same.
    forwarded = {"Forwarded": 'for="[2001:db8::7]";proto=https;host=app.example'}
    peer = await open_peer(gw, rooms=1, origin=APP, headers={**cookie(token), **forwarded})
    await peer.close()

    def logged() -> bool:
        return len(_connects(gw, user)) == 2

    await eventually(logged, "two connect log lines")
    assert [e["peer"] for e in _connects(gw, user)] == ["198.51.100.7", "2001:db8::7"]


async def test_an_untrusted_peer_cannot_claim_an_origin_or_an_address(
        gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory()  # trusts no proxy
    user = unique("direct")
    token = make_token(gw.secret, user)
    assert await refused_status(gw, {**cookie(token), **FORWARDED}, origin=APP) == 403
    peer = await open_peer(gw, rooms=1, headers={**cookie(token), **FORWARDED})
    await peer.close()
    await eventually(lambda: len(_connects(gw, user)) == 1, "the connect log line")
    assert _connects(gw, user)[0]["peer"] == "127.0.0.1"

    trusted_elsewhere = gateway_factory(env={"ROOMCAST_TRUSTED_PROXIES": "10.0.0.0/8"})
    assert await refused_status(trusted_elsewhere, {**cookie(token), **FORWARDED},
                                origin=APP) == 403


async def test_login_cookie_is_secure_when_the_proxy_says_https(
        gateway_factory: GatewayFactory) -> None:
    trusting = gateway_factory(env={"ROOMCAST_DEV_LOGIN": "on",
                                    "ROOMCAST_TRUSTED_PROXIES": "127.0.0.1"})
    wary = gateway_factory(env={"ROOMCAST_DEV_LOGIN": "on"})
    for gw, headers, secure in ((trusting, FORWARDED, True), (trusting, {}, False),
                                (wary, FORWARDED, False)):
        # The page's origin as the gateway can tell it; an untrusted proxy's client is
        # a script here (a browser's Origin would not match: the login is same-origin).
        origin = {"Origin": APP if headers else gw.base_url} if gw is trusting else {}
        async with httpx.AsyncClient(base_url=gw.base_url, timeout=10) as http:
            r = await http.post("/login", data={"user_id": unique("c")},
                                headers={**headers, **origin})
        assert r.status_code == 303, r.text
        flags = r.headers["Set-Cookie"].lower()
        assert ("secure" in flags.split("; ")) is secure, (headers, flags)


async def test_urls_in_answers_use_the_forwarded_scheme_and_host(
        gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(env={"ROOMCAST_TRUSTED_PROXIES": "127.0.0.1",
                              "API_PREFIX": "/api"})
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=10) as http:
        body = (await http.get("/api/websocket/status", headers=FORWARDED)).json()
        assert body["$schema"] == "https://app.example/api/schemas/Status.json"
        body = (await http.get("/api/websocket/status")).json()
        assert body["$schema"] == f"{gw.base_url}/api/schemas/Status.json"
