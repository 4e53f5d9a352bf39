"""Server-to-client WebSocket frames, built once and shared by every recipient.

Server frames are unmasked (RFC 6455 §5.1), so one frame's bytes are valid on
every connection. A compressed frame (permessage-deflate, RFC 7692) is made with a
fresh compressor, so it never refers to an earlier message: the same bytes are valid
for every connection that negotiated the extension with that window size, whatever
else it received before.
"""

from __future__ import annotations

import struct
import zlib
from typing import Final

from websockets.frames import Frame, Opcode

_SHORT = struct.Struct("!BB").pack
_MEDIUM = struct.Struct("!BBH").pack
_LONG = struct.Struct("!BBQ").pack


def text_frame(payload: bytes) -> bytes:
    """An unmasked, final text frame carrying ``payload`` (UTF-8 JSON).

    The header is packed here (one per message, before every fan-out): building a
    ``websockets`` ``Frame`` to serialize it cost several times more.
    """
    n = len(payload)
    if n < 126:
        return _SHORT(0x81, n) + payload
    if n < 65536:
        return _MEDIUM(0x81, 126, n) + payload
    return _LONG(0x81, 127, n) + payload


def deflated_text_frame(payload: bytes, window_bits: int = 15) -> bytes:
    """An unmasked, final text frame with ``payload`` compressed (RSV1 set), no context."""
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -window_bits)
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    if data.endswith(b"\x00\x00\xff\xff"):
        data = data[:-4]  # RFC 7692 §7.2.1: the receiver appends it again
    n = len(data)
    if n < 126:
        header = bytes((0xC1, n))
    elif n < 65536:
        header = bytes((0xC1, 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0xC1, 127)) + n.to_bytes(8, "big")
    return header + data


def close_frame(code: int, reason: str) -> bytes:
    """An unmasked close frame with ``code`` and ``reason``."""
    return Frame(Opcode.CLOSE, code.to_bytes(2, "big") + reason.encode()[:123]).serialize(
        mask=False
    )


PING_FRAME: Final = Frame(Opcode.PING, b"roomcast").serialize(mask=False)
