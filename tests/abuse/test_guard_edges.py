"""Edges of the connection guard a hostile client found, each closed.

Frames sent in the same write as the upgrade request reached aiohttp unchecked (an
unmasked frame got a pong, an unfinished fragment was never timed out); a frame split
across the end of the request head blinded the frame watch for the connection's life; a
head that ended in the read taking it over the header cap was let through; room traffic
written after a violation's half-close logged errors and counted a slow consumer; and a
pong with an extended length hid the frames behind it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
from typing import Any

import httpx

from tests.abuse.support import (
    DEADLINE,
    eventually,
    log_events,
    raw_upgrade,
    server_frame,
    uid,
)
from tests.abuse.test_small_holes import client_frame, close_code
from tests.conftest import GatewayFactory
from tests.helpers.gateway import GatewayProcess
from tests.helpers.tokens import make_token
from tests.helpers.ws import connect_peer

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def upgrade_request(gw: GatewayProcess, token: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET /websocket/connect HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n").encode()


async def upgrade_with(gw: GatewayProcess, token: str, after: bytes) -> Streams:
    """A WebSocket handshake whose request goes in one write with ``after`` right behind it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    writer.write(upgrade_request(gw, token) + after)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


def masked(opcode: int, payload: bytes, *, fin: bool = True,
           key: bytes = b"\xff\x7f\xff\xff") -> bytes:
    """A masked client frame with a chosen mask key (this one reads as a huge length if
    its first bytes are taken for a frame header)."""
    assert len(payload) < 126
    return (bytes([(0x80 if fin else 0) | opcode, 0x80 | len(payload)]) + key
            + bytes(b ^ key[i % 4] for i, b in enumerate(payload)))


def ping_request(mid: str) -> bytes:
    return json.dumps({"type": "system", "id": mid, "data": {"action": "ping"}}).encode()


async def until_close(reader: asyncio.StreamReader) -> tuple[list[dict[str, Any]], int, bytes]:
    """The text messages the gateway sends before its close frame, and that frame's code
    and reason."""
    texts: list[dict[str, Any]] = []
    async with asyncio.timeout(DEADLINE):
        while True:
            opcode, payload = await server_frame(reader)
            if opcode == 0x8:
                return texts, int.from_bytes(payload[:2], "big"), payload[2:]
            if opcode == 0x1:
                texts.append(json.loads(payload))


async def next_text(reader: asyncio.StreamReader) -> dict[str, Any]:
    """The next text message the gateway sends (fails on a close frame)."""
    async with asyncio.timeout(DEADLINE):
        while True:
            opcode, payload = await server_frame(reader)
            assert opcode != 0x8, payload
            if opcode == 0x1:
                return dict(json.loads(payload))


async def reply(reader: asyncio.StreamReader, mid: str) -> dict[str, Any]:
    """The message answering ``mid``."""
    while (msg := await next_text(reader)).get("id") != mid:
        pass
    return msg


async def disconnect_of(gw: GatewayProcess, user: str) -> dict[str, Any]:
    """The gateway's disconnect line of this user's connection."""

    async def logged() -> dict[str, Any] | None:
        lines = [r for r in log_events(gw, "disconnect") if r.get("user") == user]
        return lines[0] if lines else None

    return await eventually(logged, f"the disconnect of {user}")


async def test_an_unmasked_frame_sent_with_the_upgrade_request_closes_with_1002(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory()
    user, mid = uid("u"), uid("ping")
    reader, writer = await upgrade_with(gw, make_token(gw.secret, user),
                                        client_frame(0x1, ping_request(mid), mask=False))
    try:
        texts, code, reason = await until_close(reader)
    finally:
        writer.transport.abort()
    assert (code, reason) == (1002, b"unmasked frame")
    assert not [m for m in texts if m.get("id") == mid], texts  # never read, nor answered
    line = await disconnect_of(gw, user)
    assert (line["reason"], line["code"]) == ("unmasked frame", 1002)


async def test_a_fragment_sent_with_the_upgrade_request_is_time_bounded(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory(env={"ROOMCAST_FRAGMENT_TIMEOUT": "1"})
    user = uid("u")
    start = client_frame(0x1, b'{"type": "message", "data": {"x": "', fin=False)
    reader, writer = await upgrade_with(gw, make_token(gw.secret, user), start)

    async def keep_alive() -> None:
        # Pings keep the connection alive while the message never ends; the timeout is
        # found when the client next sends anything.
        for _ in range(int(DEADLINE / 0.25)):
            await asyncio.sleep(0.25)
            writer.write(client_frame(0x9, b"alive"))

    pinger = asyncio.create_task(keep_alive())
    try:
        _, code, reason = await until_close(reader)
    finally:
        pinger.cancel()
        writer.transport.abort()
    assert (code, reason) == (1008, b"fragmented message unfinished")
    line = await disconnect_of(gw, user)
    assert (line["reason"], line["code"]) == ("fragmented message unfinished", 1008)


async def test_a_frame_split_across_the_end_of_the_head_leaves_the_watch_in_step(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory()
    for split in range(1, 9):  # within the 6 bytes of its header, and into its payload
        mid = uid("hb")
        frame = masked(0x1, json.dumps({"type": "heartbeat", "id": mid}).encode())
        reader, writer = await upgrade_with(gw, make_token(gw.secret, uid("u")), frame[:split])
        try:
            writer.write(frame[split:])
            assert (await reply(reader, mid))["type"] == "heartbeat", split
            writer.write(client_frame(0x1, ping_request(uid("ping")), mask=False))
            _, code, reason = await until_close(reader)
            assert (code, reason) == (1002, b"unmasked frame"), split
        finally:
            writer.transport.abort()


#: The start of a plain request head.
_HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"


def head_of(size: int, *, lead: bytes = b"", start: bytes = _HEALTHZ) -> bytes:
    """A request head of exactly ``size`` bytes, blank line and ``lead`` included, padded
    with header lines within aiohttp's per-line limit."""
    head = lead + start
    while size - len(head) > 8000 + 11:
        head += b"X-Pad: " + b"p" * 7991 + b"\r\n"
    head += b"X-End: " + b"e" * (size - len(head) - 11) + b"\r\n\r\n"
    assert len(head) == size
    return head


async def status_line(gw: GatewayProcess, head: bytes, pieces: int) -> bytes:
    """The status line of the gateway's answer to ``head`` written in ``pieces`` writes
    (empty if it cut the connection before the answer could be read)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    try:
        step = -(-len(head) // pieces)
        for at in range(0, len(head), step):
            writer.write(head[at:at + step])
            await writer.drain()
        async with asyncio.timeout(DEADLINE):
            return (await reader.readuntil(b"\r\n")).strip()
    except (asyncio.IncompleteReadError, ConnectionError):
        return b""
    finally:
        writer.transport.abort()


async def metric(gw: GatewayProcess, name: str) -> float:
    """A counter's value on the gateway's /metrics (0 if not there yet)."""
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=DEADLINE) as http:
        text = (await http.get("/metrics")).text
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


async def test_a_head_over_the_cap_is_refused_however_it_is_split(
    gateway_factory: GatewayFactory,
) -> None:
    cap = 32768
    gw = gateway_factory(env={"ROOMCAST_MAX_HEADER_BYTES": str(cap)})
    # Its blank line comes after the padding.
    upgrade = upgrade_request(gw, make_token(gw.secret, uid("u")))[:-2]
    cases = {  # label: (head, writes, refused)
        "at the cap, one write": (head_of(cap), 1, False),
        "a byte over, one write": (head_of(cap + 1), 1, True),
        "64 KB, one write": (head_of(64000), 1, True),
        "64 KB, two writes": (head_of(64000), 2, True),
        "40 KB, five writes": (head_of(40000), 5, True),
        "blank lines first, a byte over": (head_of(cap + 1, lead=b"\r\n\r\n"), 1, True),
        "40 KB upgrade request": (head_of(40000, start=upgrade), 1, True),
    }
    answers = {label: await status_line(gw, head, writes)
               for label, (head, writes, _) in cases.items()}
    for label, (_, _, too_large) in cases.items():
        expected = (b"HTTP/1.1 431 Request Header Fields Too Large", b"") if too_large else (
            b"HTTP/1.1 200 OK",)
        assert answers[label] in expected, answers
    refused = await metric(gw, 'roomcast_connections_refused_total{reason="head_too_large"}')
    assert refused == sum(r for _, _, r in cases.values()), answers


async def statuses(gw: GatewayProcess, requests: bytes) -> list[int]:
    """The status of each answer to ``requests`` sent in one write, until the gateway
    closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    found: list[int] = []
    try:
        writer.write(requests)
        async with asyncio.timeout(DEADLINE):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                found.append(int(head.split(b" ", 2)[1]))
                length = re.search(rb"(?im)^content-length: *(\d+)", head)
                await reader.readexactly(int(length.group(1)) if length else 0)
                if re.search(rb"(?im)^connection: *close", head):
                    break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.transport.abort()
    return found


async def test_a_head_pipelined_behind_a_request_counts_against_the_cap(
    gateway_factory: GatewayFactory,
) -> None:
    cap = 32768
    gw = gateway_factory(env={"ROOMCAST_MAX_HEADER_BYTES": str(cap)})
    get = _HEALTHZ + b"\r\n"
    body = b'{"text": "a blank line\r\n\r\nGET / HTTP/1.1 inside a body is no head"}'
    post = (b"POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    chunked = (b"POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"4\r\nabcd\r\n0\r\n\r\n")
    last = _HEALTHZ.replace(b"\r\n", b"\r\nConnection: close\r\n", 1) + b"\r\n"
    over = head_of(cap + 1)
    assert await statuses(gw, get + get + last) == [200, 200, 200]
    assert await statuses(gw, post + get + last) == [405, 200, 200]
    assert await statuses(gw, chunked + last) == [405, 200]
    # Behind a request, a head over the cap is refused too: the connection closes after
    # that request's answer (a 431 then would be read as the answer to the first).
    assert await statuses(gw, get + over) == [200]
    assert await statuses(gw, post + over) == [405]
    assert await metric(gw, 'roomcast_connections_refused_total{reason="head_too_large"}') == 2


async def test_room_traffic_after_a_violation_is_not_written_nor_a_slow_consumer(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory()
    group = uid("busy")
    room = f"group:{group}"
    publisher = await connect_peer(gw, uid("pub"), groups=[group])
    user = uid("violator")
    reader, writer, _ = await raw_upgrade(gw, make_token(gw.secret, user, groups=[group]))
    try:
        ack = await publisher.request({"type": "message", "id": uid("m"), "room": room,
                                       "data": {"n": -1}})
        assert ack["data"]["action"] == "ack", ack
        while (await next_text(reader)).get("type") != "message":
            pass  # the violator is in the room and its traffic flows
        writer.write(client_frame(0x1, b'{"type": "heartbeat"}', mask=False))
        _, code, _ = await until_close(reader)
        assert code == 1002
        # Still in the room until its socket is cut: each of these goes its way.
        for n in range(20):
            ack = await publisher.request({"type": "message", "id": uid("m"), "room": room,
                                           "data": {"n": n}})
            assert ack["data"]["action"] == "ack", ack
        line = await disconnect_of(gw, user)
    finally:
        writer.transport.abort()
        await publisher.close()
    assert (line["reason"], line["code"]) == ("unmasked frame", 1002)
    assert not log_events(gw, "flush_failed")
    assert not log_events(gw, "slow_consumer")
    assert "Traceback" not in gw.log()
    assert await metric(gw, "roomcast_slow_consumers_dropped_total") == 0


#: A text frame of 124 bytes, which a pong whose length byte reads 126 seemed to carry.
_HIDDEN = masked(0x1, b'{"type": "heartbeat", "id": "hidden"}'.ljust(118))


async def test_a_pong_with_an_extended_length_is_not_taken_as_a_lone_pong(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory()
    key = b"\0\0\0\0"
    for data in (
        b"\x8a\xfe" + (124).to_bytes(2, "big") + key + b"p" * 124,  # non-minimal length
        b"\x8a\xfe" + (0).to_bytes(2, "big") + key + _HIDDEN,  # a text frame behind it
    ):
        assert len(data) == 6 + 126  # what a 7-bit reading of the length said
        reader, writer, _ = await raw_upgrade(gw, make_token(gw.secret, uid("u")))
        try:
            writer.write(data)
            # Passed on, it reaches aiohttp, which refuses a control frame's extended length.
            assert await close_code(reader) == 1002
        finally:
            writer.transport.abort()


async def test_pings_held_back_by_the_rate_limit_are_not_answered_after_a_violation(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory()
    user = uid("u")
    reader, writer, _ = await raw_upgrade(gw, make_token(gw.secret, user))
    try:
        # More pings than the burst allows: the rest wait in aiohttp for the rate limit.
        writer.write(client_frame(0x9, b"p") * 300)
        pongs = 0
        async with asyncio.timeout(DEADLINE):
            while pongs < 150:
                pongs += (await server_frame(reader))[0] == 0xA
        writer.write(client_frame(0x1, b'{"type": "heartbeat"}', mask=False))
        _, code, _ = await until_close(reader)
        assert code == 1002
        line = await disconnect_of(gw, user)
    finally:
        writer.transport.abort()
    assert not log_events(gw, "connection_failed")
    assert (line["reason"], line["code"]) == ("unmasked frame", 1002)
