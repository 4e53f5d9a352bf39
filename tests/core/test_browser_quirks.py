"""Frames and credentials as browsers really send them (byte-exact, through real sockets).

The same cases driven by Chromium itself are in tests/browser/test_browser_quirks.py.
"""

from __future__ import annotations

import time

import httpx

from tests.admin.support import ADMIN_SCOPE, admin_env
from tests.conftest import GatewayFactory
from tests.core.support import (
    cookie,
    eventually,
    log_events,
    open_peer,
    refused_status,
    unique,
)
from tests.helpers.gateway import GatewayProcess
from tests.helpers.problems import problem
from tests.helpers.tokens import make_token, raw_token
from tests.helpers.ws import connect_peer

COOKIE = "falcon_auth_token"


async def test_a_lone_surrogate_is_read_as_u_fffd(gateway: GatewayProcess) -> None:
    """JSON.stringify("hi 😀".slice(0, 4)) writes "hi \\ud83d": valid JSON, no valid Unicode."""
    group = unique("g")
    sender = await connect_peer(gateway, unique("s"), groups=[group])
    reader = await connect_peer(gateway, unique("r"), groups=[group])
    await sender.expect("room_update")
    frame = ('{"id":"cut-1","type":"message","room":"group:' + group + '",'
             '"data":{"text":"hi \\ud83d","pair":"\\ud83d\\ude00","tail":"\\ude00!"}}')
    await sender.send(frame)
    ack = await sender.expect(lambda m: m.get("id") == "cut-1")
    assert ack["type"] == "system" and ack["data"]["status"] == "ok", ack
    got = await reader.expect("message")
    assert got["data"] == {"text": "hi \ufffd", "pair": "\U0001f600", "tail": "\ufffd!"}
    await sender.close()
    await reader.close()


async def test_unparseable_frames_are_answered_with_the_clients_id(
        gateway: GatewayProcess) -> None:
    peer = await connect_peer(gateway, unique("broken"))
    for frame, code in (
        ('{"id": "t1", "type": "message", "room": "user:x", "data": {"text": "cut', "invalid_json"),
        ('{"type": "presence", "data": {"id": "not-me"}, "id": "t2", oops}', "invalid_json"),
        (b'{"id": "t3", "type": "presence"}', "binary_not_supported"),
    ):
        await peer.send(frame)
        reply = await peer.recv()
        assert reply["type"] == "error" and reply["data"]["code"] == code, reply
        assert reply["id"] == recover(frame), (frame, reply)
    await peer.close()


def recover(frame: str | bytes) -> str:
    text = frame.decode() if isinstance(frame, bytes) else frame
    return text.split('"id": "')[-1].split('"')[0]


async def test_two_auth_cookies_the_first_valid_one_wins(gateway: GatewayProcess) -> None:
    user = unique("twice")
    good = make_token(gateway.secret, user)
    expired = raw_token(gateway.secret, {"user_id": unique("old"), "exp": int(time.time()) - 5})
    for pair in ((expired, good), (good, expired), ("garbage", good)):
        header = {"Cookie": f"{COOKIE}={pair[0]}; theme=dark; {COOKIE}={pair[1]}"}
        peer = await open_peer(gateway, rooms=1, headers=header)
        assert peer.welcome["data"]["user_id"] == user
        await peer.close()
    both_bad = {"Cookie": f"{COOKIE}={expired}; {COOKIE}=garbage"}
    assert await refused_status(gateway, both_bad) == 401


async def test_a_basic_authorization_header_falls_back_to_the_cookie(
        fresh_gateway: GatewayProcess) -> None:
    gw = fresh_gateway
    user = unique("staging")
    basic = {"Authorization": "Basic dXNlcjpwYXNz"}
    peer = await open_peer(gw, rooms=1, headers={**basic, **cookie(make_token(gw.secret, user))})
    assert peer.welcome["data"]["user_id"] == user
    await peer.close()
    # Alone it is still refused, and the log says why.
    assert await refused_status(gw, basic) == 401

    def refused() -> list[str]:
        return [e["reason"] for e in log_events(gw) if e["event"] == "handshake_refused"]

    await eventually(lambda: bool(refused()), "the refusal log line")
    assert refused() == ["malformed_authorization"]


async def test_the_admin_guard_reads_cookies_the_same_way(
        gateway_factory: GatewayFactory) -> None:
    admin_gw = gateway_factory(env=admin_env())
    admin = make_token(admin_gw.secret, unique("adm"), scopes=ADMIN_SCOPE)
    stale = make_token("another-secret-that-is-long-enough-0123456789", "x", scopes=ADMIN_SCOPE)
    headers = {"Cookie": f"{COOKIE}={stale}; {COOKIE}={admin}",
               "Authorization": "Basic dXNlcjpwYXNz"}
    async with httpx.AsyncClient(base_url=admin_gw.base_url, timeout=10) as http:
        assert (await http.get("/websocket/rooms", headers=headers)).status_code == 200
        # Still the cookie: a cross-site write is refused even with a Basic header.
        r = await http.post("/websocket/broadcast", json={"type": "notification", "data": {}},
                            headers={**headers, "Origin": "https://evil.example"})
        assert problem(r, 403)["reason"] == "cross_site"
