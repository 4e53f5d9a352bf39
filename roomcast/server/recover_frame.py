"""The first frame of a ``?recover=1`` connection: its positions, read before any room.

The rooms are joined only after it (or after ``ROOMCAST_RECOVER_WAIT``), so each room's
``room_joined`` can say whether the client's missed publications follow.
"""

from __future__ import annotations

from aiohttp import WSMessage, WSMsgType, web

from roomcast.exceptions import ProtocolError
from roomcast.history.base import Position
from roomcast.protocol.envelope import SystemCommand, parse_client_message

#: The ``recover`` message's id and positions.
Recover = tuple[str | None, dict[str, Position]]


def wants_recovery(request: web.Request) -> bool:
    # The raw request target: request.query (and even query_string) keeps a parsed copy
    # for the connection's whole life (~400 bytes of every idle connection).
    return "recover=1" in request.raw_path.partition("?")[2].split("&")


async def read_recover(
    ws: web.WebSocketResponse, *, wait: float, max_size: int
) -> tuple[Recover | None, WSMessage | None]:
    """The positions of the first frame if it is a ``recover`` message; otherwise the
    frame read (to be handled as usual), or nothing after ``wait`` seconds."""
    try:
        msg = await ws.receive(timeout=wait)
    except TimeoutError:
        return None, None
    if msg.type is WSMsgType.TEXT:
        try:
            command = parse_client_message(msg.data, max_size=max_size)
        except ProtocolError:
            return None, msg
        if isinstance(command, SystemCommand) and command.action == "recover":
            return (command.id, command.positions), None
    return None, msg
