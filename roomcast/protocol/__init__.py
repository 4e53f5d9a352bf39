"""The wire protocol, pure and I/O-free: parse client frames, build server frames.

Nothing here imports asyncio, aiohttp or redis, so it can be unit-tested and
fuzzed with plain bytes.
"""

from roomcast.protocol.codes import CloseCode, ErrorCode
from roomcast.protocol.envelope import (
    CLIENT_TYPES,
    KNOWN_TYPES,
    SERVER_API_TYPES,
    ClientCommand,
    Heartbeat,
    Presence,
    Publish,
    SystemCommand,
    parse_client_message,
)
from roomcast.protocol.messages import encode, now_rfc3339

__all__ = [
    "CLIENT_TYPES",
    "KNOWN_TYPES",
    "SERVER_API_TYPES",
    "ClientCommand",
    "CloseCode",
    "ErrorCode",
    "Heartbeat",
    "Presence",
    "Publish",
    "SystemCommand",
    "encode",
    "now_rfc3339",
    "parse_client_message",
]
