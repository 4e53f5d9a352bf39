"""The established Python peer: python-socketio AsyncServer (ASGI) on uvicorn.

Every client enters room ``bench`` in its connect handler (before the server
answers the namespace connect with ``40{...}``). A ``publish`` event from a client
is emitted as event ``msg`` to the room, skipping the sender: one ``emit(room=)``
per message, which is what a socket.io application does.

    python -m benchmarks.servers.sio --port 8766
"""

from __future__ import annotations

import argparse
from typing import Any

import socketio
import uvicorn

ROOM = "bench"


def build_app() -> Any:
    sio = socketio.AsyncServer(
        async_mode="asgi",
        logger=False,
        engineio_logger=False,
        cors_allowed_origins="*",
    )

    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        await sio.enter_room(sid, ROOM)

    async def publish(sid: str, data: Any) -> None:
        await sio.emit("msg", data, room=ROOM, skip_sid=sid)

    sio.on("connect", connect)
    sio.on("publish", publish)
    return socketio.ASGIApp(sio)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ws", default="auto", help="uvicorn WebSocket implementation")
    parser.add_argument("--backlog", type=int, default=2048)
    args = parser.parse_args()
    config = uvicorn.Config(
        build_app(),
        host=args.host,
        port=args.port,
        loop="uvloop",
        ws=args.ws,
        lifespan="off",
        log_level="warning",
        access_log=False,
        backlog=args.backlog,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
