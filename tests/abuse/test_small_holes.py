"""Smaller holes a hostile client found, each closed.

Bytes that are not UTF-8 in credentials (500 and a traceback), data nested past what
orjson writes (1011), a user id forging text log lines, the Redis address in answers to
users, a dev login usable from another site, unmasked frames, fragments held forever,
a hanging Redis holding handshakes and API calls, and a token's group that the API
could not take away.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.abuse.support import (
    API_KEY,
    DEADLINE,
    api_client,
    eventually,
    log_events,
    ping,
    raw_upgrade,
    server_frame,
    uid,
)
from tests.conftest import GatewayFactory
from tests.helpers.gateway import GatewayProcess
from tests.helpers.redis_server import RedisServer
from tests.helpers.tokens import make_token, raw_token
from tests.helpers.ws import connect_peer


def raw_request(gw: GatewayProcess, path: str, header: bytes) -> bytes:
    """The status line the gateway answers a request carrying ``header`` with."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=DEADLINE) as sock:
        sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     b"Sec-WebSocket-Version: 13\r\n" + header + b"\r\n\r\n")
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
        return answer.split(b"\r\n", 1)[0]


@pytest.mark.parametrize("header", [b"Authorization: Bearer \xff\xfe.\xc3(.x",
                                    b"Cookie: falcon_auth_token=\xff\xfe",
                                    b"X-API-Key: \xff\xfe"],
                         ids=["authorization", "cookie", "api key"])
def test_undecodable_credentials_are_401_not_500(
    gateway_factory: GatewayFactory, header: bytes
) -> None:
    gw = gateway_factory(env={"ROOMCAST_API_KEY": API_KEY})
    for path in ("/websocket/connect", "/websocket/connections", "/api/me"):
        assert raw_request(gw, path, header).startswith(b"HTTP/1.1 401"), path
    assert "Traceback" not in gw.log()


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


async def test_deeply_nested_data_is_refused_and_the_connection_kept(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory()
    group = uid("g")
    sender = await connect_peer(gw, uid("sender"), groups=[group])
    other = await connect_peer(gw, uid("other"), groups=[group])
    try:
        for depth in (254, 300, 1000):
            frame = ('{"type": "message", "id": "deep", "room": "group:' + group
                     + '", "data": {"x": ' + nested(depth) + "}}")
            await sender.ws.send(frame)
            reply = await sender.expect(lambda m: m.get("id") == "deep")
            assert reply["type"] == "error" and reply["data"]["code"] == "invalid_field", reply
        reply = await sender.request({"type": "message", "id": "fine", "room": f"group:{group}",
                                      "data": {"x": json.loads(nested(100))}})
        assert reply["data"]["action"] == "ack"
        await other.expect(lambda m: m.get("type") == "message")
        await ping(sender)
    finally:
        await sender.close()
        await other.close()


async def test_a_user_id_cannot_forge_text_log_lines(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(env={"ROOMCAST_LOG_FORMAT": "text"})
    forged = "12:34:56 ERROR   roomcast.admin forged_event"
    peer = await connect_peer(gw, "evil\n" + forged)
    try:
        await ping(peer)
    finally:
        await peer.close()

    async def disconnect_logged() -> bool | None:
        return True if " disconnect " in gw.log() else None

    await eventually(disconnect_logged, "the disconnect to be logged")
    assert not any(line.startswith(forged) for line in gw.log().splitlines())
    assert re.search(r'user="evil\\n12:34:56', gw.log())


@pytest.fixture
def paused_pair(redis_server: RedisServer) -> Iterator[tuple[GatewayProcess, RedisServer]]:
    gw = GatewayProcess(env={"REDIS_URL": redis_server.url, "ROOMCAST_API_KEY": API_KEY,
                             "ROOMCAST_STORE_TIMEOUT": "1"}).start()
    yield gw, redis_server
    gw.close()


@pytest.mark.redis
async def test_redis_addresses_stay_in_the_logs(
    paused_pair: tuple[GatewayProcess, RedisServer],
) -> None:
    gw, server = paused_pair
    address = server.url.split("://", 1)[1].split("/", 1)[0]
    group = uid("g")
    peer = await connect_peer(gw, uid("u"), groups=[group])
    try:
        server.stop()
        reply = await peer.request({"type": "message", "id": "m", "room": f"group:{group}",
                                    "data": {"text": "hi"}})
        assert reply["type"] == "error" and reply["data"]["code"] == "unavailable", reply
        assert address not in json.dumps(reply)
        async with httpx.AsyncClient(base_url=gw.base_url, timeout=DEADLINE) as client:
            status = (await client.get("/websocket/status")).text
        assert address not in status
    finally:
        await peer.close()


@pytest.mark.redis
async def test_a_hanging_redis_gets_a_clear_answer_from_the_bound(
    paused_pair: tuple[GatewayProcess, RedisServer],
) -> None:
    gw, server = paused_pair
    user = uid("u")
    token = make_token(gw.secret, user)
    api: httpx.AsyncClient = api_client(gw)
    server.pause()  # SIGSTOP: connections are accepted, nothing answers
    try:
        with pytest.raises(InvalidStatus) as refused:
            await connect(gw.ws_url, open_timeout=DEADLINE,
                          additional_headers={"Authorization": f"Bearer {token}"})
        assert refused.value.response.status_code == 503
        # The store's own timeout (5 s) did not answer: the handshake's bound did.
        failures = (log_events(gw, "denial_store_failed")
                    + log_events(gw, "membership_store_failed"))
        assert [f["error"] for f in failures] == ["timed out"]
        r = await api.put(f"/websocket/users/{user}/groups/{uid('g')}", json={"name": "G"})
        assert r.status_code == 503
        assert "within 1 s" in r.json()["detail"]
    finally:
        server.resume()
        await api.aclose()


async def test_the_dev_login_is_same_origin_only_and_loud_with_a_real_secret(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory(env={"ROOMCAST_DEV_LOGIN": "on"})  # JWT_SECRET is set
    warnings = log_events(gw, "dev_login_with_real_secret")
    assert warnings and warnings[0]["level"] == "critical"
    form = {"user_id": uid("victim"), "groups": "admins", "admin": "1"}
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=DEADLINE) as client:
        for headers in ({"Origin": "https://evil.example"},
                        {"Sec-Fetch-Site": "cross-site", "Origin": "null"},
                        {"Sec-Fetch-Site": "same-site"}):
            r = await client.post("/login", data=form, headers=headers)
            assert r.status_code == 403, headers
            assert "set-cookie" not in r.headers
        r = await client.post("/login", data=form, headers={"Origin": gw.base_url,
                                                            "Sec-Fetch-Site": "same-origin"})
        assert r.status_code == 303
        assert "falcon_auth_token" in r.headers["set-cookie"]


def client_frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True) -> bytes:
    head = bytes([(0x80 if fin else 0) | opcode])
    assert len(payload) < 126
    if not mask:
        return head + bytes([len(payload)]) + payload
    key = os.urandom(4)
    return (head + bytes([0x80 | len(payload)]) + key
            + bytes(b ^ key[i % 4] for i, b in enumerate(payload)))


async def close_code(reader: asyncio.StreamReader) -> int:
    """Read server frames until the close frame; its code."""
    async with asyncio.timeout(DEADLINE):
        while True:
            opcode, payload = await server_frame(reader)
            if opcode == 0x8:
                return int.from_bytes(payload[:2], "big")


async def test_unmasked_client_frames_close_the_connection(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory()
    reader, writer, _ = await raw_upgrade(gw, make_token(gw.secret, uid("u")))
    try:
        writer.write(client_frame(0x1, b'{"type": "heartbeat", "id": "h"}', mask=False))
        assert await close_code(reader) == 1002
    finally:
        writer.transport.abort()


async def test_text_that_is_not_utf8_closes_with_1007_and_is_counted(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory(env={"ROOMCAST_API_KEY": API_KEY})
    reader, writer, _ = await raw_upgrade(gw, make_token(gw.secret, uid("u")))
    try:
        writer.write(client_frame(0x1, b'{"type": "heartbeat", "id": "\xff"}'))
        assert await close_code(reader) == 1007
    finally:
        writer.transport.abort()
    assert 'roomcast_messages_rejected_total{code="too_large"}' not in (
        await one_malformed_frame_counted(gw))


async def one_malformed_frame_counted(gw: GatewayProcess) -> str:
    """The gateway's metrics once they count one malformed frame."""
    async with api_client(gw) as http:

        async def counted() -> str | None:
            text = (await http.get("/metrics")).text
            return text if ('roomcast_messages_rejected_total{code="malformed_frame"} 1.0'
                            in text) else None

        return await eventually(counted, "the malformed frame to be counted")


async def test_a_compressed_frame_that_does_not_inflate_closes_with_1002(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory(env={"ROOMCAST_API_KEY": API_KEY, "ROOMCAST_PERMESSAGE_DEFLATE": "on"})
    user = uid("u")
    reader, writer, _ = await raw_upgrade(
        gw, make_token(gw.secret, user),
        headers={"Sec-WebSocket-Extensions": "permessage-deflate"})
    try:
        # RSV1 (compressed) with bytes no deflate stream starts with.
        writer.write(client_frame(0x40 | 0x1, b"\xff\xfe\xfd not deflate"))
        assert await close_code(reader) == 1002
    finally:
        writer.transport.abort()
    await one_malformed_frame_counted(gw)
    gone = [e for e in log_events(gw, "disconnect") if e.get("user") == user]
    assert gone and gone[0]["code"] == 1002, gone


@pytest.mark.parametrize(("sent", "answer"), [
    (b"\x03\xe8", 1000), (b"\x03\xe9", 1001), (b"\x0f\xa1", 4001), (b"", 1000),
    (b"\x03\xee", 1002), (b"\x03\xed", 1002), (b"\x13\x88", 1002), (b"\xff\xff", 1002),
    (b"\x0b\xb7", 1002),
], ids=["1000", "1001", "4001", "no code", "1006", "1005", "5000", "65535", "2999"])
async def test_a_clients_close_is_answered_with_its_code_or_1002_if_no_endpoint_may_send_it(
    gateway_factory: GatewayFactory, sent: bytes, answer: int,
) -> None:
    gw = gateway_factory()
    user = uid("closer")
    reader, writer, _ = await raw_upgrade(gw, make_token(gw.secret, user))
    try:
        writer.write(client_frame(0x8, sent))
        assert await close_code(reader) == answer
    finally:
        writer.transport.abort()

    async def logged() -> dict[str, Any] | None:
        gone = [e for e in log_events(gw, "disconnect") if e.get("user") == user]
        return gone[0] if gone else None

    line = await eventually(logged, "the disconnect line")
    assert line["code"] == answer


@pytest.mark.parametrize("how", ["reset", "eof"])
async def test_a_client_gone_without_a_close_frame_is_logged_1006(
    gateway_factory: GatewayFactory, how: str,
) -> None:
    gw = gateway_factory()
    user = uid("gone")
    _, writer, _ = await raw_upgrade(gw, make_token(gw.secret, user))
    if how == "reset":
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
    else:
        writer.write_eof()

    async def logged() -> dict[str, Any] | None:
        gone = [e for e in log_events(gw, "disconnect") if e.get("user") == user]
        return gone[0] if gone else None

    try:
        assert (await eventually(logged, "the disconnect line"))["code"] == 1006
    finally:
        writer.transport.abort()


@pytest.mark.parametrize("keepalive", [0x9, 0xA], ids=["pings", "pongs"])
async def test_unfinished_fragmented_messages_are_time_bounded(
    gateway_factory: GatewayFactory, keepalive: int,
) -> None:
    gw = gateway_factory(env={"ROOMCAST_FRAGMENT_TIMEOUT": "1"})
    reader, writer, _ = await raw_upgrade(gw, make_token(gw.secret, uid("u")))

    async def keep_alive() -> None:
        # Pings (or unsolicited pongs, which the guard may take before aiohttp sees
        # them) keep the connection alive while the message never ends.
        for _ in range(int(DEADLINE / 0.25)):
            await asyncio.sleep(0.25)
            writer.write(client_frame(keepalive, b"alive"))

    pinger = asyncio.create_task(keep_alive())
    try:
        writer.write(client_frame(0x1, b'{"type": "message", "data": {"x": "', fin=False))
        assert await close_code(reader) == 1008
    finally:
        pinger.cancel()
        writer.transport.abort()


async def test_a_token_group_removed_through_the_api_leaves_live_connections(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory(env={"ROOMCAST_API_KEY": API_KEY})
    group = uid("t")
    room = f"group:{group}"
    user = uid("u")
    member = await connect_peer(gw, user, groups=[group])
    speaker = await connect_peer(gw, uid("speaker"), groups=[group])
    api = api_client(gw)
    try:
        r = await api.delete(f"/websocket/users/{user}/groups/{group}")
        assert r.status_code == 200 and r.json()["changed"] is True, r.text
        await member.expect(lambda m: m.get("type") == "room_left" and m["room"] == room)
        await member.expect("group_membership_change")
        assert room not in member.rooms
        await speaker.request({"type": "message", "id": "s", "room": room,
                               "data": {"text": "after"}})
        rejoin = await member.request({"type": "system", "id": "j",
                                       "data": {"action": "join", "room": room}})
        assert rejoin["data"]["code"] == "forbidden"
        before_pong = await ping(member)
        assert not [m for m in before_pong if m.get("type") == "message"]
    finally:
        await api.aclose()
        await member.close()
        await speaker.close()


async def test_malformed_http_requests_cannot_flood_the_log(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory(env={"ROOMCAST_LOG_FORMAT": "json"})
    bad = [b"GET /websocket/status HTTP/1.1\r\n\r\n",  # no Host
           b"GET /websocket/status HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
           b"GET /websocket/status HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n b\r\n\r\n"]
    for raw in bad * 10:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", gw.port), DEADLINE)
        try:
            writer.write(raw)
            async with asyncio.timeout(DEADLINE):
                status = await reader.readline()
        finally:
            writer.transport.abort()
        assert status.startswith(b"HTTP/1.") and b" 400 " in status, (raw, status)
    await ping(await connect_peer(gw, uid("after")))
    log = gw.log()
    assert "Traceback" not in log and '"level": "error"' not in log, log[-2000:]
    reported = log_events(gw, "bad_http_request")
    # One line per interval, counting what it stands for.
    assert 1 <= len(reported) <= 2 and reported[0]["status"] == 400, reported


async def test_refused_handshakes_cannot_flood_the_log(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(env={"ROOMCAST_LOG_FORMAT": "json"})
    attempts = 40
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=DEADLINE) as http:
        for _ in range(attempts):
            r = await http.get(f"{gw.base_url}/websocket/connect",
                               headers={"Authorization": "Bearer not.a.token"})
            assert r.status_code == 401 and r.json()["reason"] == "malformed_token"
        elapsed = time.monotonic() - started
        scraped = (await http.get(f"{gw.base_url}/metrics")).text
    # Counted, every one...
    assert f'roomcast_handshake_refusals_total{{reason="malformed_token"}} {attempts}.0' in scraped
    # ...but at most 10 lines per 10 s (the rest counted in the next line).
    await ping(await connect_peer(gw, uid("after")))
    lines = [e for e in log_events(gw, "handshake_refused") if e["reason"] == "malformed_token"]
    windows = int(elapsed // 10) + 1  # they start at the first refusal
    assert 1 <= len(lines) <= 10 * windows, lines
    assert sum(e["count"] for e in lines) <= attempts


async def test_a_token_longer_than_a_header_line_of_8_kib_is_read(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory()
    user = uid("big")
    token = raw_token(gw.secret, {"user_id": user, "exp": int(time.time()) + 600,
                                  "padding": "x" * 12_000})
    assert len(token) > 12_000
    peer = await connect_peer(gw, user, token=token)
    assert peer.welcome["data"]["user_id"] == user
    await peer.close()
    # Still bounded: a head over ROOMCAST_MAX_HEADER_BYTES (32 KiB) is refused.
    with pytest.raises(InvalidStatus) as refused:
        await connect(gw.ws_url, open_timeout=DEADLINE, additional_headers={
            "Authorization": "Bearer " + raw_token(gw.secret, {
                "user_id": user, "exp": int(time.time()) + 600, "padding": "x" * 40_000})})
    assert refused.value.response.status_code == 431


async def test_an_upgrade_for_another_websocket_version_is_refused_naming_13(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory()
    token = make_token(gw.secret, uid("old"))
    async with httpx.AsyncClient(timeout=DEADLINE) as http:
        r = await http.get(f"{gw.base_url}/websocket/connect", headers={
            "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "8",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Authorization": f"Bearer {token}"})
    assert r.status_code == 426 and r.headers["sec-websocket-version"] == "13"
    assert r.json()["code"] == "upgrade_required"
