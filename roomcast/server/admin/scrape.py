"""``GET /metrics``: this instance's Prometheus metrics, as text.

Public like ``/websocket/status``: counts by type, code and reason only, never
user ids or room names (label values are bounded sets).
"""

from __future__ import annotations

from collections import Counter

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from roomcast import metrics
from roomcast.server.state import gateway
from roomcast.types import RoomType, room_type


def _update_room_gauges(request: web.Request) -> None:
    """Rooms by type, counted now: cheaper than tracking every join and leave."""
    by_type = Counter(room_type(room) for room in gateway(request).node.hub.rooms)
    for kind in RoomType:
        metrics.ROOMS.labels(str(kind)).set(by_type.get(kind, 0))


async def scrape(request: web.Request) -> web.Response:
    _update_room_gauges(request)
    response = web.Response(body=generate_latest(metrics.REGISTRY))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
