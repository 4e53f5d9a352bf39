"""Health for people and load balancers: ``/websocket/status``, ``/healthz``, ``/readyz``.

``GET {API_PREFIX}/websocket/status`` is public and answers 200 always, in the Go
gateway's shape plus roomcast's fields that do not clash. It is
cheap: this instance's counts come from memory and the cluster-wide counts
from one registry read shared by every caller for ``CLUSTER_CACHE`` seconds,
so a crowd polling it cannot load Redis. Details of an outage (addresses,
errors) go to the log only.

``/healthz`` (liveness: the event loop answers) and ``/readyz`` (readiness:
started, not shutting down, Redis reachable) are for load balancers and
Kubernetes probes: they answer 200 or 503 with a small JSON body.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

from roomcast.logs import log_event
from roomcast.server import workers
from roomcast.server.admin.problems import json_response, with_schema
from roomcast.server.state import GATEWAY, Gateway, gateway

_log = logging.getLogger("roomcast.status")

#: Seconds one cluster-wide count serves every status call.
CLUSTER_CACHE: Final = 1.0
#: Go's time.Time zero value, which the Go gateway writes before the first connection.
GO_ZERO_TIME: Final = "0001-01-01T00:00:00Z"
_HEALTHY: Final = "WebSocket service is running normally"
_UNHEALTHY: Final = "WebSocket service has connectivity issues"


@dataclass
class _ClusterCache:
    """The last cluster-wide count, shared by concurrent callers."""

    expires: float = 0.0
    value: tuple[int, int] | None = None
    ok: bool = True
    refreshing: asyncio.Task[None] | None = None
    logged_failure: bool = field(default=False)


_CACHE = web.AppKey("status_cache", _ClusterCache)


async def _cluster(app: web.Application, gw: Gateway) -> _ClusterCache:
    cache = app[_CACHE]
    loop = asyncio.get_running_loop()
    if loop.time() >= cache.expires:
        if cache.refreshing is None or cache.refreshing.done():
            cache.refreshing = loop.create_task(_refresh(cache, gw))
        # shield: a caller that goes away must not cancel the read the others wait for.
        await asyncio.shield(cache.refreshing)
    return cache


async def _refresh(cache: _ClusterCache, gw: Gateway) -> None:
    try:
        cache.value, cache.ok = await gw.node.registry.totals(), True
        if cache.logged_failure:
            log_event(_log, "status_registry_recovered")
        cache.logged_failure = False
    except Exception as exc:
        cache.value, cache.ok = None, False
        if not cache.logged_failure:  # once per outage, not once per poll
            log_event(_log, "status_registry_failed", logging.WARNING, error=str(exc))
            cache.logged_failure = True
    cache.expires = asyncio.get_running_loop().time() + CLUSTER_CACHE


def _reason(gw: Gateway, registry_ok: bool) -> str | None:
    """A general reason, never the broker's own text (it may carry the Redis address)."""
    if gw.closing:
        return "shutting down"
    if not gw.node.broker.healthy:
        return "Redis is unavailable"
    if not registry_ok:
        return "the connection registry cannot be read"
    return None


async def status(request: web.Request) -> web.Response:
    gw = gateway(request)
    node = gw.node
    cache = await _cluster(request.app, gw)
    reason = _reason(gw, cache.ok)
    last = node.last_connection_at
    body: dict[str, Any] = {
        "module": "websocket",
        "status": "unhealthy" if reason else "healthy",
        "stats": {
            "total_connections": node.connections_accepted,
            "active_connections": len(node.hub.connections),
            "total_rooms": len(node.hub.rooms),
            "messages_processed": node.messages_processed,
            "messages_broadcast": node.messages_published,
            "last_connection_time": last or GO_ZERO_TIME,
        },
        "message": _UNHEALTHY if reason else _HEALTHY,
        "server_id": node.server_id,
        "redis_channels": list(getattr(node.broker, "channels", ())),
    }
    if cache.value is not None:
        body["cluster"] = {"connections": cache.value[0], "rooms": cache.value[1]}
    role = workers.COLLECTOR.role
    if role is not None:
        body["workers"] = role.table()
    if reason:
        body["reason"] = reason
    # Always 200, as in Go; load balancers use /readyz.
    return with_schema(request, json_response(body), "Status")


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers (restart it if this times out)."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: send traffic here only while Redis (if used) is reachable."""
    gw = request.app[GATEWAY]
    reason = _reason(gw, True)
    if reason:
        return web.json_response({"status": "not ready", "reason": reason}, status=503)
    return web.json_response({"status": "ready"})


def add_routes(app: web.Application, prefix: str) -> None:
    app[_CACHE] = _ClusterCache()
    app.router.add_get(prefix + "/websocket/status", status)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
