"""Server-to-client WebSocket frames, built once and shared by every recipient.

Server frames are unmasked (RFC 6455 §5.1), so one frame's bytes are valid on
every connection; permessage-deflate stays off for that reason.
"""

from __future__ import annotations

from typing import Final

from websockets.frames import Frame, Opcode


def text_frame(payload: bytes) -> bytes:
    """An unmasked, final text frame carrying ``payload`` (UTF-8 JSON)."""
    return Frame(Opcode.TEXT, payload).serialize(mask=False)


def close_frame(code: int, reason: str) -> bytes:
    """An unmasked close frame with ``code`` and ``reason``."""
    return Frame(Opcode.CLOSE, code.to_bytes(2, "big") + reason.encode()[:123]).serialize(
        mask=False
    )


PING_FRAME: Final = Frame(Opcode.PING, b"roomcast").serialize(mask=False)
