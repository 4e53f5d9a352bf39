"""The Python client SDK: a reconnecting asyncio client of the gateway.

.. code-block:: python

    async with Client("ws://localhost:8080/websocket/connect", token=jwt) as client:
        client.on("user_profile_update", on_profile)
        client.on_recovery(lambda r: r.recovered or reload(r.room))
        ack = await client.room("group:ops").send({"text": "hello"})
        async for message in client.messages():
            ...

See ``docs/client.md``.
"""

from roomcast.client.backoff import Backoff
from roomcast.client.client import Client, TokenProvider
from roomcast.client.errors import (
    AckTimeout,
    AuthRejected,
    ClientClosed,
    ClientError,
    ConnectionLost,
    ConnectTimeout,
    QueueFull,
    ServerClosed,
    ServerError,
)
from roomcast.client.handshake import HandshakeFailed, normalize_url
from roomcast.client.invalidator import CacheKey, Invalidator, keys_for, keys_for_room
from roomcast.client.message import Message
from roomcast.client.positions import Position, Reason, Recovery
from roomcast.client.queue import OfflineQueue, Overflow
from roomcast.client.room import Room
from roomcast.client.states import ConnectionState
from roomcast.client.stream import Stream
from roomcast.exceptions import AuthError

__all__ = [
    "AckTimeout",
    "AuthError",
    "AuthRejected",
    "Backoff",
    "CacheKey",
    "Client",
    "ClientClosed",
    "ClientError",
    "ConnectTimeout",
    "ConnectionLost",
    "ConnectionState",
    "HandshakeFailed",
    "Invalidator",
    "Message",
    "OfflineQueue",
    "Overflow",
    "Position",
    "QueueFull",
    "Reason",
    "Recovery",
    "Room",
    "ServerClosed",
    "ServerError",
    "Stream",
    "TokenProvider",
    "keys_for",
    "keys_for_room",
    "normalize_url",
]
