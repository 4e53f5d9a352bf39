"""Liveness: server pings; a connection silent past the timeout is closed and cleaned up."""

from __future__ import annotations

import asyncio

from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from tests.conftest import GatewayFactory
from tests.core.support import bearer, ping, status, unique
from tests.helpers.gateway import GatewayProcess
from tests.helpers.tokens import make_token
from tests.helpers.ws import TIMEOUT, connect_peer

# Pings every half second; silent for 5 s is dead. A live client on a busy machine answers
# well within that; the silent one is closed a few seconds in, well within WAIT.
FAST = {"ROOMCAST_PING_INTERVAL": "0.5", "ROOMCAST_PING_TIMEOUT": "5"}
WAIT = 60.0


class SilentClient:
    """Upgrades by hand over raw TCP, then never sends another byte (no pongs)."""

    def __init__(self, gw: GatewayProcess, token: str) -> None:
        self.gw = gw
        self.protocol = ClientProtocol(parse_uri(gw.ws_url))
        self.token = token
        self.frames: list[Frame] = []

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.gw.port)
        request = self.protocol.connect()
        request.headers["Authorization"] = f"Bearer {self.token}"
        self.protocol.send_request(request)
        writer.write(b"".join(self.protocol.data_to_send()))
        await writer.drain()
        async with asyncio.timeout(TIMEOUT):
            while True:
                self.protocol.receive_data(await reader.read(65536))
                events = self.protocol.events_received()
                if events:
                    response = events[0]
                    assert isinstance(response, Response) and response.status_code == 101
                    self.frames.extend(e for e in events[1:] if isinstance(e, Frame))
                    break
        self.protocol.data_to_send()  # discard: whatever it would answer is never sent
        return reader, writer

    async def read_until_closed(self, reader: asyncio.StreamReader) -> Close | None:
        """Read (but never answer) until the server closes; the close frame it sent."""
        async with asyncio.timeout(WAIT):
            while data := await reader.read(65536):
                self.protocol.receive_data(data)
                self.frames.extend(e for e in self.protocol.events_received()
                                   if isinstance(e, Frame))
        return self.protocol.close_rcvd


async def test_a_silent_connection_is_closed_and_a_live_one_stays(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory(env=FAST)
    user = unique("live")
    # A normal client: websockets answers the server's pings by itself.
    alive = await connect_peer(gw, user)
    silent = SilentClient(gw, make_token(gw.secret, user))
    reader, writer = await silent.open()
    try:
        joined = await alive.expect("room_update")
        assert joined["data"]["action"] == "member_joined"
        close = await silent.read_until_closed(reader)
        assert close is not None and close.code == 3009  # CloseCode.STALE
        assert any(f.opcode is Opcode.PING for f in silent.frames)  # it was pinged first
        left = await alive.expect("room_update", timeout=WAIT)
        assert left["data"] == {**joined["data"], "action": "member_left", "member_count": 1}
        # The live client has outlived the silent one's timeout and still works.
        await ping(alive)
        assert (await status(gw))["stats"]["active_connections"] == 1
    finally:
        writer.close()
        await alive.close()


async def test_a_client_that_stops_reading_is_removed(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(env=FAST)
    user = unique("stuck")
    watcher = await connect_peer(gw, user)  # shares user:{user} with the stuck client
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    protocol = ClientProtocol(parse_uri(gw.ws_url))
    request = protocol.connect()
    request.headers.update(bearer(make_token(gw.secret, user)))
    protocol.send_request(request)
    writer.write(b"".join(protocol.data_to_send()))
    await writer.drain()
    try:
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
        # From here on nothing is read or written on that socket.
        joined = await watcher.expect("room_update")
        assert joined["data"]["action"] == "member_joined"
        left = await watcher.expect("room_update", timeout=WAIT)
        assert left["data"]["action"] == "member_left"
        assert left["data"]["connection_id"] == joined["data"]["connection_id"]
        after = (await status(gw))["stats"]
        assert (after["active_connections"], after["total_rooms"]) == (1, 1)
        await ping(watcher)
    finally:
        writer.close()
        await watcher.close()


async def test_a_client_that_talks_is_not_pinged_and_a_quiet_one_is(
    gateway_factory: GatewayFactory,
) -> None:
    # Passes every 2 s; the talker sends a heartbeat every 0.2 s, so only a stall of
    # ~1.8 s would leave it unheard for a whole interval.
    gw = gateway_factory(env={"ROOMCAST_PING_INTERVAL": "2", "ROOMCAST_PING_TIMEOUT": "60"})
    user = unique("talk")
    talker = SilentClient(gw, make_token(gw.secret, user))
    quiet = SilentClient(gw, make_token(gw.secret, user))
    t_reader, t_writer = await talker.open()
    q_reader, q_writer = await quiet.open()

    async def collect(client: SilentClient, reader: asyncio.StreamReader) -> None:
        while data := await reader.read(65536):
            client.protocol.receive_data(data)
            client.frames.extend(e for e in client.protocol.events_received()
                                 if isinstance(e, Frame))
            client.protocol.data_to_send()  # the quiet one never answers its pings

    def pings(client: SilentClient) -> int:
        return sum(f.opcode is Opcode.PING for f in client.frames)

    readers = [asyncio.create_task(collect(talker, t_reader)),
               asyncio.create_task(collect(quiet, q_reader))]
    try:
        async with asyncio.timeout(WAIT):
            while pings(quiet) < 2:
                talker.protocol.send_text(b'{"type":"system","data":{"action":"ping"}}')
                t_writer.write(b"".join(talker.protocol.data_to_send()))
                await asyncio.sleep(0.2)  # the client's own pace, not a wait for an event
        replies = [f for f in talker.frames if f.opcode is Opcode.TEXT and b'"pong"' in f.data]
        assert replies  # its heartbeats were read and answered
        assert pings(talker) == 0
    finally:
        for task in readers:
            task.cancel()
        t_writer.close()
        q_writer.close()
