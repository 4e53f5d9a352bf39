"""The bare limit: aiohttp (roomcast's library) fanning out a pre-built frame.

Every connection is in one implicit room. A text message from any connection is
framed once (server frames are unmasked) and the same bytes are written to every
other connection's transport: no auth, no envelope, no queue. A message POSTed to
``/websocket/rooms/{room}/message`` (roomcast's API route) is fanned out the same way
to every connection, its room spliced in: the least an HTTP-triggered fan-out does.
``--mode send``
instead calls ``send_str`` per connection (for calibrating against other aiohttp measurements).
On connect the server sends ``{"type":"room_joined"}`` so the generator knows the
connection is registered.

    python -m benchmarks.servers.bare --port 8765 [--mode frame|send]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import struct

import uvloop
from aiohttp import WSMsgType, web

JOINED = '{"type":"room_joined","room":"bench"}'


def text_frame(payload: bytes) -> bytes:
    """An unmasked, final text frame carrying ``payload``."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x81, n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x81, 126, n)
    else:
        header = struct.pack("!BBQ", 0x81, 127, n)
    return header + payload


class Hub:
    """The connections and the fan-out."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.transports: dict[web.WebSocketResponse, asyncio.Transport] = {}

    async def handler(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(compress=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        transport = request.transport
        assert transport is not None
        self.transports[ws] = transport
        await ws.send_str(JOINED)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    if self.mode == "frame":
                        self.fan_out_frame(ws, msg.data.encode())
                    else:
                        await self.fan_out_send(ws, msg.data)
        finally:
            self.transports.pop(ws, None)
        return ws

    async def post(self, request: web.Request) -> web.Response:
        """``{"type":"message","data":...}`` to every connection, as the WebSocket trigger
        would have sent it (``{"type":"message","room":...,"data":...}``)."""
        body = await request.read()
        head, sep, rest = body.partition(b'"data":')
        room = request.match_info["room"].encode()
        self.fan_out_frame(None, head + b'"room":"' + room + b'",' + sep + rest)
        return web.Response(body=b'{"success":true}', content_type="application/json")

    def fan_out_frame(self, sender: web.WebSocketResponse | None, payload: bytes) -> None:
        frame = text_frame(payload)
        for ws, transport in self.transports.items():
            if ws is not sender and not transport.is_closing():
                transport.write(frame)

    async def fan_out_send(self, sender: web.WebSocketResponse, text: str) -> None:
        for ws in list(self.transports):
            if ws is not sender and not ws.closed:
                await ws.send_str(text)


async def serve(host: str, port: int, mode: str, backlog: int) -> None:
    hub = Hub(mode)
    app = web.Application()
    app.router.add_get("/ws", hub.handler)
    app.router.add_post("/websocket/rooms/{room}/message", hub.post)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=backlog)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=("frame", "send"), default="frame")
    parser.add_argument("--backlog", type=int, default=2048)
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port, args.mode, args.backlog))


if __name__ == "__main__":
    main()
