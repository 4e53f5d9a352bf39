"""A TCP relay between one test client and a gateway: the network the test controls.

The client connects to the relay's port; each accepted connection is piped to the
gateway's port. The test can cut every current connection (a network drop: both ends
see the socket die), refuse new ones for a while (an outage the client's reconnect
attempts run into), and stall the gateway-to-client direction (a consumer too slow to
read: the gateway's socket fills and its write queue grows).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass, field

#: Receive buffer of the gateway-side socket: small, so a stalled relay fills the
#: gateway's socket fast (the kernel grants at least twice this).
SMALL_RCVBUF = 4096
_CHUNK = 65536


@dataclass(eq=False)  # hashed by identity: kept in a set
class _Pair:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    #: Set while gateway-to-client bytes may flow.
    flowing: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            writer.transport.abort()

    def close(self) -> None:
        """Close both sides once what was relayed is flushed (a clean end)."""
        for writer in (self.client, self.upstream):
            writer.close()


class Relay:
    """Relays ``127.0.0.1:port`` to ``127.0.0.1:upstream_port``.

    Args:
        upstream_port: the gateway's port (kept across its restarts).
        small_buffer: give the gateway-side sockets a small receive buffer, so that
            :meth:`stall` makes the gateway see a slow consumer quickly.
    """

    def __init__(self, upstream_port: int, *, small_buffer: bool = False) -> None:
        self.upstream_port = upstream_port
        self.small_buffer = small_buffer
        self.port = 0
        self.accepted = 0
        self._refusing = False
        self._pairs: set[_Pair] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> Relay:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def ws_url(self, path: str = "/websocket/connect") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    @property
    def connections(self) -> int:
        """Connections being relayed right now."""
        return len(self._pairs)

    def cut(self) -> int:
        """Abort every relayed connection (both sides); returns how many."""
        pairs, self._pairs = self._pairs, set()
        for pair in pairs:
            pair.abort()
        return len(pairs)

    def refuse(self, refusing: bool = True) -> None:
        """Close new connections at once (True) or relay them again (False)."""
        self._refusing = refusing

    def stall(self) -> None:
        """Stop passing gateway-to-client bytes on the current connections."""
        for pair in self._pairs:
            pair.flowing.clear()

    def resume(self) -> None:
        for pair in self._pairs:
            pair.flowing.set()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut()
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await self._connect()
        except OSError:  # the gateway is down: the client sees the connection fail
            writer.transport.abort()
            return
        self.accepted += 1
        pair = _Pair(writer, up_writer)
        pair.flowing.set()
        self._pairs.add(pair)
        pair.tasks = [
            asyncio.create_task(self._pump(reader, up_writer, pair, None)),
            asyncio.create_task(self._pump(up_reader, writer, pair, pair.flowing)),
        ]
        await asyncio.gather(*pair.tasks, return_exceptions=True)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if self.small_buffer:
                # Before connecting: the window is agreed on in the handshake.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_RCVBUF)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1",
                                                                 self.upstream_port))
        except OSError:
            sock.close()
            raise
        return await asyncio.open_connection(sock=sock)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    pair: _Pair, gate: asyncio.Event | None) -> None:
        clean = False
        try:
            while True:
                if gate is not None:
                    await gate.wait()
                data = await reader.read(_CHUNK)
                if not data:
                    clean = True
                    break
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            # One side ended: end the other the same way (a close frame relayed just
            # before a clean end must reach the peer; a reset stays a reset).
            self._pairs.discard(pair)
            with contextlib.suppress(Exception):
                if clean:
                    pair.close()
                else:
                    pair.abort()
            for task in pair.tasks:
                if task is not asyncio.current_task():
                    task.cancel()
