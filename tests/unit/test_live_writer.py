"""The live socket's writer task ends quietly when its viewer is gone.

A viewer that drops while its tail is being written made the writer raise aiohttp's
``ClientConnectionResetError``, which the endpoint re-raised when it collected the
task: an ERROR with a traceback for every dashboard closed on a busy room. Which of
the two (the read loop's end, the writer's next frame) comes first is a race on real
sockets, so the writer is driven here directly.
"""

from __future__ import annotations

from typing import cast

from aiohttp import ClientConnectionResetError, web

from roomcast.server.admin import live
from roomcast.server.admin.guard import Caller


class _GoneSocket:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send_str(self, data: str) -> None:
        if self.sent:
            raise ClientConnectionResetError("Cannot write to closing transport")
        self.sent.append(data)


async def test_the_writer_stops_without_an_error_when_the_viewer_is_gone() -> None:
    ws = _GoneSocket()
    viewer = live._Viewer(cast(web.WebSocketResponse, ws), Caller("api_key", None, False))
    for frame in (b'{"type":"tick"}', b'{"type":"tail"}', b'{"type":"tail"}'):
        viewer.offer(frame)
    await live._write(viewer)  # returns: no exception for the endpoint to re-raise
    assert ws.sent == ['{"type":"tick"}']
    assert viewer.queue.qsize() == 1  # it stopped at the first failed frame
