"""permessage-deflate: off by default; when on, one compressed frame per message for all."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Iterator

import httpx
import pytest
from websockets.extensions.permessage_deflate import PerMessageDeflate

from roomcast.broker.base import ToRoom
from roomcast.hub import Hub
from roomcast.protocol import messages
from roomcast.protocol.frames import deflated_text_frame, text_frame
from roomcast.types import RoomId
from roomcast.writer import Flusher
from tests.fanout.test_writer_fanout import FakeTransport, flushed, make_conn
from tests.helpers.gateway import GatewayProcess
from tests.helpers.ws import connect_peer

API_KEY = "deflate-api-key-0123456789abcdef"


def inflate(frame: bytes) -> bytes:
    """The payload of one compressed server frame (RSV1 set, no context)."""
    assert frame[0] == 0xC1  # FIN, RSV1, text
    n, start = frame[1], 2
    if n == 126:
        n, start = int.from_bytes(frame[2:4], "big"), 4
    elif n == 127:
        n, start = int.from_bytes(frame[2:10], "big"), 10
    data = frame[start:]
    assert len(data) == n
    return zlib.decompressobj(-15).decompress(data + b"\x00\x00\xff\xff")


def test_a_compressed_frame_inflates_to_the_payload_at_every_size() -> None:
    for size in (0, 10, 200, 70_000):
        payload = (b'{"type":"message","data":"' + b"x" * size + b'"}')
        assert inflate(deflated_text_frame(payload)) == payload


async def test_one_compressed_frame_per_message_for_every_recipient_that_negotiated() -> None:
    hub, flusher = Hub(), Flusher()
    room = RoomId("group:all")
    deflating: list[FakeTransport] = []
    plain: list[FakeTransport] = []
    for n in range(4):
        conn, transport = make_conn(n, flusher)
        conn.deflate = 15 if n else 0
        hub.add(conn)
        hub.join(conn, room, "all")
        (deflating if n else plain).append(transport)
    assert hub.deflating == 3
    payload = messages.encode(messages.envelope("message", {"text": "hi " * 50}, room=room))
    assert hub.deliver(ToRoom(room), payload) == 4
    await flushed()
    first = deflating[0].writes[0]
    assert all(t.writes == [first] and t.writes[0] is first for t in deflating)
    assert inflate(first) == payload and len(first) < len(text_frame(payload))
    assert plain[0].writes == [text_frame(payload)]
    for conn in list(hub.connections.values()):
        hub.remove(conn)
    assert hub.deflating == 0


@pytest.fixture
def gateway_factory() -> Iterator[list[GatewayProcess]]:
    started: list[GatewayProcess] = []
    yield started
    for gw in started:
        gw.close()


@pytest.mark.parametrize("setting", [None, "on"])
async def test_negotiated_only_when_enabled_and_messages_arrive_intact(
    setting: str | None, gateway_factory: list[GatewayProcess]
) -> None:
    env = {"ROOMCAST_API_KEY": API_KEY}
    if setting is not None:
        env["ROOMCAST_PERMESSAGE_DEFLATE"] = setting
    gw = GatewayProcess(env=env)
    gateway_factory.append(gw)
    await asyncio.to_thread(gw.start)
    # websockets offers permessage-deflate by default, as browsers do.
    peers = [await connect_peer(gw, f"u{n}", groups=["blue"]) for n in range(3)]
    try:
        for peer in peers:
            extensions = peer.ws.protocol.extensions
            assert any(isinstance(e, PerMessageDeflate) for e in extensions) == bool(setting)
        text = "compressible " * 200
        async with httpx.AsyncClient(timeout=20, headers={"X-API-Key": API_KEY}) as client:
            reply = await client.post(f"{gw.base_url}/websocket/rooms/group:blue/message",
                                      json={"type": "message", "data": {"text": text}})
        reply.raise_for_status()
        for peer in peers:
            message = await peer.expect("message")
            assert message["data"] == {"text": text}
        # What the clients send still works (aiohttp inflates it).
        reply_msg = await peers[0].request(
            {"type": "system", "id": "p1", "data": {"action": "ping"}})
        assert reply_msg["type"] == "system"
    finally:
        await asyncio.gather(*(p.close() for p in peers))
