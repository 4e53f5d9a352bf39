"""``GET /websocket/status``: public health, no user data (as the Go gateway's)."""

from __future__ import annotations

from aiohttp import web

from roomcast.server.state import gateway


async def status(request: web.Request) -> web.Response:
    gw = gateway(request)
    node = gw.node
    broker = node.broker
    try:
        total_connections, total_rooms = await node.registry.totals()
        registry_ok = True
    except Exception:
        total_connections, total_rooms = len(node.hub.connections), len(node.hub.rooms)
        registry_ok = False
    healthy = broker.healthy and registry_ok
    body = {
        "status": "healthy" if healthy else "unhealthy",
        "server_id": node.server_id,
        "total_connections": total_connections,
        "active_connections": len(node.hub.connections),
        "total_rooms": total_rooms,
        "messages_processed": node.messages_processed,
        "redis_channels": list(getattr(broker, "channels", ())),
    }
    if not healthy:
        body["reason"] = broker.health_reason or "registry unavailable"
    return web.json_response(body, status=200 if healthy else 503)
