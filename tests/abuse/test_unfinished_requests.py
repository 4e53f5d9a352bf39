"""Connections that never finish their request head are cut, not held.

200 connections each sending 120 header lines of 8 KB, never the blank line, once took
the gateway from 60 to 431 MB for as long as they liked; 1,100 silent TCP connections at
a 1,024-descriptor limit locked every user out without a log line. Now the head has a
deadline and a size cap, unfinished handshakes are capped (oldest cut first), running out
of descriptors is logged (throttled) and the soft descriptor limit is raised at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import resource

import httpx
import psutil
import pytest

from tests.abuse.support import (
    API_KEY,
    DEADLINE,
    eventually,
    gateway_peers,
    log_events,
    ping,
    uid,
)
from tests.conftest import GatewayFactory
from tests.helpers.gateway import GatewayProcess
from tests.helpers.tokens import make_token
from tests.helpers.ws import connect_peer

LINE = b"X-Filler: " + b"a" * 8000 + b"\r\n"


async def open_raw(gw: GatewayProcess) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", gw.port), DEADLINE)


async def cut_by_gateway(reader: asyncio.StreamReader) -> bytes:
    """What the gateway sent before it closed the connection (fails if it never does)."""
    got = b""
    async with asyncio.timeout(DEADLINE):
        while True:
            try:
                chunk = await reader.read(65536)
            except ConnectionError:
                return got
            if not chunk:
                return got
            got += chunk


async def served(gw: GatewayProcess, who: str) -> None:
    """A new user connects and gets a pong: the attack did not lock anyone out."""
    peer = await connect_peer(gw, uid(who))
    await ping(peer)
    await peer.close()


def abort_all(conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]) -> None:
    for _, writer in conns:
        writer.transport.abort()


def refused(gw: GatewayProcess, reason: str) -> int:
    text = httpx.get(f"{gw.base_url}/metrics", timeout=DEADLINE).text
    match = re.search(
        rf'^roomcast_connections_refused_total\{{reason="{reason}"\}} (\S+)$', text, re.M
    )
    return int(float(match.group(1))) if match else 0


async def test_a_head_that_never_ends_is_cut_at_the_header_cap(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory(env={"ROOMCAST_HANDSHAKE_TIMEOUT": "600"})
    conns = [await open_raw(gw) for _ in range(20)]
    try:
        for _, writer in conns:
            writer.write(b"GET /websocket/status HTTP/1.1\r\nHost: x\r\n")
        answers = []
        for reader, writer in conns:
            # 120 lines of 8 KB, as the attack did; the gateway stops it long before.
            with contextlib.suppress(ConnectionError):
                for _ in range(120):
                    writer.write(LINE)
                    await writer.drain()
            answers.append(await cut_by_gateway(reader))
        assert all(a.startswith(b"HTTP/1.1 431") or a == b"" for a in answers), answers
        assert refused(gw, "head_too_large") == 20
        # Everyone else is served.
        await served(gw, "bystander")
    finally:
        abort_all(conns)


async def test_silent_connections_are_cut_at_the_deadline(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory(env={"ROOMCAST_HANDSHAKE_TIMEOUT": "1"})
    conns = [await open_raw(gw) for _ in range(30)]
    # Half of them send part of a WebSocket head, slowly; half send nothing.
    for _, writer in conns[::2]:
        writer.write(b"GET /websocket/connect HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
    try:
        for reader, _ in conns:
            assert await cut_by_gateway(reader) == b""
        assert refused(gw, "head_timeout") == 30
        # Logged, but throttled: far fewer lines than cut connections.
        lines = log_events(gw, "connection_cut")
        assert 1 <= len(lines) < 10, lines
        assert lines[0]["reason"] == "head_timeout"
        await served(gw, "bystander")
    finally:
        abort_all(conns)


async def test_unfinished_handshakes_are_capped_oldest_first(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory(env={"ROOMCAST_HANDSHAKE_TIMEOUT": "600",
                              "ROOMCAST_MAX_PENDING_HANDSHAKES": "10"})
    conns = [await open_raw(gw) for _ in range(40)]
    try:
        # The first 30 were cut to make room for the newer ones, the last 10 are held.
        for reader, _ in conns[:30]:
            assert await cut_by_gateway(reader) == b""
        ports = {w.get_extra_info("sockname")[1] for _, w in conns}
        assert len(ports & gateway_peers(gw)) <= 10
        assert refused(gw, "pending_cap") >= 30
        # A real client finishes its handshake within milliseconds: it gets through.
        await served(gw, "user")
    finally:
        abort_all(conns)


async def test_running_out_of_descriptors_is_logged_and_survived(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory(env={"ROOMCAST_HANDSHAKE_TIMEOUT": "3"})
    assert gw.proc is not None
    proc = psutil.Process(gw.proc.pid)
    _, hard = proc.rlimit(psutil.RLIMIT_NOFILE)
    proc.rlimit(psutil.RLIMIT_NOFILE, (proc.num_fds() + 20, hard))
    conns = []
    try:
        for _ in range(60):
            conns.append(await open_raw(gw))

        async def logged() -> bool | None:
            return True if log_events(gw, "descriptors_exhausted") else None

        await eventually(logged, "the exhausted descriptors to be logged")
        # The silent connections are cut at the deadline, freeing the descriptors.
        for reader, _ in conns:
            await cut_by_gateway(reader)
        await served(gw, "user")
        assert len(log_events(gw, "descriptors_exhausted")) <= 3
    finally:
        abort_all(conns)


def test_the_soft_descriptor_limit_is_raised_at_start(gateway_factory: GatewayFactory) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = 256
    assert hard > low, "this test needs a hard descriptor limit above 256"
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    try:
        gw = gateway_factory()  # inherits the low soft limit
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert gw.proc is not None
    raised, _ = psutil.Process(gw.proc.pid).rlimit(psutil.RLIMIT_NOFILE)
    assert raised > low
    assert log_events(gw, "fd_limit")[0]["soft"] == raised


def _post_head(path: str, auth: str, length: int) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n").encode()


@pytest.mark.parametrize("route", ["admin", "refresh"])
async def test_a_body_that_never_ends_is_answered_408_and_closed(
    gateway_factory: GatewayFactory, route: str,
) -> None:
    gw = gateway_factory(env={"ROOMCAST_BODY_TIMEOUT": "1", "ROOMCAST_API_KEY": API_KEY,
                              "ROOMCAST_LOG_FORMAT": "json"})
    if route == "admin":
        head = _post_head("/websocket/broadcast", f"X-API-Key: {API_KEY}", 100)
    else:
        token = make_token(gw.secret, uid("slow"))
        head = _post_head("/websocket/token/refresh", f"Authorization: Bearer {token}", 100)
    reader, writer = await open_raw(gw)
    try:
        writer.write(head + b'{"type": "notification", "data": {')
        async with asyncio.timeout(DEADLINE):
            status = await reader.readline()
            answer = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"Content-Length: (\d+)", answer)[1])  # type: ignore[index]
            body = await reader.readexactly(length)
    finally:
        writer.transport.abort()
    # The connection then closes (after aiohttp's lingering read of what still comes).
    assert status == b"HTTP/1.1 408 Request Timeout\r\n", status + answer
    assert b"Connection: close" in answer and b'"code":"timeout"' in body, answer + body
    await served(gw, "after-slow-body")
    assert "ERROR" not in gw.log() and '"level": "error"' not in gw.log(), gw.log()[-2000:]


async def test_a_client_leaving_mid_body_is_no_error(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(env={"ROOMCAST_API_KEY": API_KEY, "ROOMCAST_LOG_FORMAT": "json"})
    _, writer = await open_raw(gw)
    writer.write(_post_head("/websocket/broadcast", f"X-API-Key: {API_KEY}", 100) + b'{"ty')
    await writer.drain()
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()

    async with httpx.AsyncClient(base_url=gw.base_url, timeout=DEADLINE) as http:

        async def answered() -> bool | None:
            text = (await http.get("/metrics")).text
            return ('roomcast_api_requests_total{operation="broadcast",status="400"} 1.0'
                    in text or None)

        await eventually(answered, "the abandoned request to be counted")
    assert '"level": "error"' not in gw.log(), gw.log()[-2000:]
