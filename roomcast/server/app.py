"""Build the aiohttp application: wire settings into a node and routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from roomcast.auth.denials import Denials, MemoryDenials, RedisDenials, SqliteDenials
from roomcast.auth.providers import build_verifier
from roomcast.broker.base import Broker
from roomcast.broker.memory import MemoryBroker
from roomcast.config import Settings
from roomcast.history.memory import MemoryHistory
from roomcast.history.service import History
from roomcast.hub import Hub
from roomcast.lifetime import Lifetimes
from roomcast.logs import log_event
from roomcast.membership import open_store
from roomcast.membership.base import MembershipStore
from roomcast.membership.sync import MembershipSync
from roomcast.node import Node
from roomcast.presence.base import PresenceStore
from roomcast.presence.memory import MemoryPresenceStore
from roomcast.protocol.codes import CloseCode
from roomcast.refresh import TokenRefresher
from roomcast.registry.base import Registry
from roomcast.registry.local import LocalRegistry
from roomcast.server import login, pages, proxy, status, tokens
from roomcast.server.admin.problems import api_paths, http_problem, problem_response
from roomcast.server.badrequests import quiet_malformed_requests
from roomcast.server.guard import ConnectionGuard
from roomcast.server.quotas import Quota
from roomcast.server.state import GATEWAY, Gateway
from roomcast.server.websocket import liveness, websocket_endpoint
from roomcast.supervisor import supervise
from roomcast.writer import Flusher

_log = logging.getLogger("roomcast.server")


def membership_store(settings: Settings) -> MembershipStore:
    """The store the settings ask for (see ``ROOMCAST_MEMBERSHIP_URL``)."""
    url = settings.membership_url or settings.redis_url or settings.database_url
    return open_store(url or settings.sqlite_path, cache_ttl=settings.membership_cache,
                      timeout=settings.membership_timeout,
                      authorization=settings.membership_authorization,
                      cluster=settings.redis_cluster and url == settings.redis_url)


def broker_and_registry(settings: Settings, hub: Hub) -> tuple[Broker, Registry]:
    """In-memory without ``REDIS_URL``; Redis pub/sub and registry with it."""
    if settings.redis_url is None:
        return MemoryBroker(), LocalRegistry(hub, settings.server_id)
    from roomcast.broker.redis import RedisBroker

    broker: RedisBroker
    if settings.redis_cluster:
        from roomcast.broker.cluster import ClusterBroker

        broker = ClusterBroker(settings.redis_url, settings.server_id)
    else:
        broker = RedisBroker(settings.redis_url, settings.server_id, mode=settings.broker_mode)
    try:
        from roomcast.registry.redis import RedisRegistry
    except ImportError:
        return broker, LocalRegistry(hub, settings.server_id)
    return broker, RedisRegistry(
        settings.redis_url, hub, settings.server_id, instance_ttl=settings.instance_ttl,
        cluster=settings.redis_cluster,
    )


def history(settings: Settings) -> History:
    """Streams per room: in memory for a single instance, in Redis for a cluster (where
    appending also publishes to the other instances, in the broker's wire format)."""
    if settings.redis_url is None:
        return History(MemoryHistory(), settings.history_policy,
                       snapshot=settings.history_snapshot)
    from roomcast.history.redis import RedisHistory, redis_router

    return History(
        RedisHistory(settings.redis_url, cluster=settings.redis_cluster),
        settings.history_policy,
        redis_router(settings.server_id, sharded=settings.broker_mode == "sharded",
                     cluster=settings.redis_cluster),
        shared=True,
    )


def presence_store(settings: Settings) -> PresenceStore:
    """Shared by the cluster in Redis; in memory for a single instance."""
    if settings.redis_url is None:
        return MemoryPresenceStore()
    from roomcast.presence.redis import RedisPresenceStore

    return RedisPresenceStore(settings.redis_url, ttl=settings.instance_ttl,
                              cluster=settings.redis_cluster, server_id=settings.server_id)


def denial_store(settings: Settings) -> Denials:
    """Revocations and kicks: in Redis when there is one (shared, survives restarts),
    else in the SQLite file of the membership store, else in memory."""
    url = settings.redis_url
    if url is None and (settings.membership_url or "").startswith(("redis://", "rediss://")):
        url = settings.membership_url
    if url is not None:
        return RedisDenials(url, cluster=settings.redis_cluster and url == settings.redis_url)
    store = settings.membership_url or settings.database_url or settings.sqlite_path
    scheme, sep, rest = store.partition("://")
    if not sep:
        return SqliteDenials(store)
    if scheme.lower() == "sqlite" and rest:
        return SqliteDenials(rest)
    return MemoryDenials()


def create_app(settings: Settings) -> web.Application:
    """The gateway as an aiohttp application (not yet started)."""
    quiet_malformed_requests()
    prefix = settings.api_prefix
    app = web.Application(
        client_max_size=1 << 20,
        middlewares=[
            _handshakes(settings.websocket_path),
            # Without trusted proxies there is nothing to apply: no layer per request.
            *([proxy.middleware(settings.trusted_proxies)] if settings.trusted_proxies else []),
            _api_problems(prefix, settings.websocket_path),
        ],
    )
    hub = Hub(max_frame_bytes=settings.max_queue_bytes)
    broker, registry = broker_and_registry(settings, hub)
    denials = denial_store(settings)
    node = Node(
        server_id=settings.server_id,
        broker=broker,
        store=membership_store(settings),
        registry=registry,
        hub=hub,
        room_event_threshold=settings.room_event_threshold,
        room_event_interval=settings.room_event_interval,
        room_event_rate=settings.room_event_rate,
        presence=presence_store(settings),
        presence_ttl=settings.instance_ttl,
        presence_grace=settings.presence_grace,
        lifetimes=Lifetimes(enabled=settings.token_expiry, warning=settings.expiry_warning,
                            leeway=settings.jwt_leeway),
        denials=denials,
        history=history(settings),
    )
    verifier = build_verifier(settings)
    gw = Gateway(settings=settings, node=node, flusher=Flusher(), verifier=verifier,
                 guard=ConnectionGuard(timeout=settings.handshake_timeout,
                                       max_head_bytes=settings.max_header_bytes,
                                       max_pending=settings.max_pending_handshakes),
                 per_user=Quota(settings.max_connections_per_user),
                 per_ip=Quota(settings.max_connections_per_ip))
    gw.refresher = TokenRefresher.install(node, verifier)
    app[GATEWAY] = gw
    sync = MembershipSync.install(node)
    app.cleanup_ctx.append(_lifecycle)
    app.on_cleanup.append(lambda _: sync.close())
    app.on_shutdown.append(_close_sockets)

    app.router.add_get(settings.websocket_path, websocket_endpoint)
    status.add_routes(app, prefix)
    tokens.add_routes(app, prefix)
    app.router.add_get("/api/me", login.me)
    if settings.dev_login_enabled:
        login.add_routes(app)
        if not settings.generated_secret:
            # Anyone reaching /login can mint an administrator's token signed with the
            # production secret: say so loudly, every start.
            log_event(_log, "dev_login_with_real_secret", logging.CRITICAL,
                      warning="ROOMCAST_DEV_LOGIN is on with a configured JWT_SECRET: anyone "
                              "who reaches /login can mint tokens (admin too) with it")
    pages.add_routes(app, demo=settings.demo_enabled)
    with contextlib.suppress(ImportError):
        from roomcast.server import admin

        admin.add_routes(app, prefix)
    return app


def _handshakes(websocket_path: str) -> Middleware:
    """Tell the connection guard when a request's head is in (the WebSocket endpoint
    does so itself once its handshake is over) and when its response is out."""

    @web.middleware
    def handshakes(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
        if request.path == websocket_path:
            # The endpoint tells the guard itself: a middleware frame would stay for the
            # connection's whole life (~300 bytes of every idle connection).
            return handler(request)
        return _answered(request, handler)

    return handshakes


async def _answered(request: web.Request, handler: Handler) -> web.StreamResponse:
    guard = request.app[GATEWAY].guard
    guard.finished(request.transport, _body_length(request))
    # None if the handler failed: aiohttp answers 500 and closes the connection itself.
    response: web.StreamResponse | None = None
    try:
        response = await handler(request)
        return response
    except web.HTTPException as exc:  # an answer too
        response = exc
        raise
    finally:
        if guard.next_request(request.transport) and response is not None:
            response.force_close()


def _body_length(request: web.Request) -> int | None:
    """The request's body length, if the connection stays HTTP and it is known (chunked:
    not known; no length at all: no body)."""
    headers = request.headers
    if "Upgrade" in headers or "Transfer-Encoding" in headers:
        return None
    return request.content_length or 0


def _api_problems(prefix: str, websocket_path: str) -> Middleware:
    """Unknown paths and methods of the HTTP API answer problem+json too (the WebSocket
    endpoint converts its own, without a frame kept for the connection's life)."""
    api = api_paths(prefix)

    @web.middleware
    def problems(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
        if request.path == websocket_path:
            return handler(request)
        return _converted(request, handler, api)

    return problems


async def _converted(request: web.Request, handler: Handler,
                     api: tuple[str, ...]) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        return http_problem(exc, request, api)
    except Exception:
        # The admin operations convert their own; this is every other route of the API
        # (status, spec, token refresh). Elsewhere aiohttp's plain 500 is the page's.
        if not request.path.startswith(api):
            raise
        log_event(_log, "request_failed", logging.ERROR, path=request.path, exc_info=True)
        return problem_response(500, "internal error", code="internal", request=request)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    gw = app[GATEWAY]
    await gw.verifier.start()
    await gw.node.start()
    sweeper = supervise("liveness", lambda: liveness(gw))
    log_event(
        _log,
        "node_ready",
        server_id=gw.node.server_id,
        broker=type(gw.node.broker).__name__,
        store=type(gw.node.store).__name__,
    )
    yield
    sweeper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sweeper
    await gw.node.close()
    await gw.verifier.close()
    log_event(_log, "stopped", server_id=gw.node.server_id)


async def _close_sockets(app: web.Application) -> None:
    """SIGTERM: every client gets 1001 (going away) so it reconnects elsewhere."""
    gw = app[GATEWAY]
    gw.closing = True
    conns = list(gw.node.hub.connections.values())
    log_event(_log, "shutdown", connections=len(conns))
    for conn in conns:
        conn.close(CloseCode.GOING_AWAY, "server shutting down")
    closing = [conn.closer.wait() for conn in conns if conn.closer is not None]
    if closing:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*closing, return_exceptions=True), gw.settings.shutdown_timeout
            )
