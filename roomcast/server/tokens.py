"""``POST /websocket/token/refresh``: a browser hands its fresh HttpOnly cookie to its
live connections (the page cannot read the cookie to send it in-band).

The request names the connections; those of the cookie's user get the new token's
expiry, scopes and groups on whichever instance holds them. A cookie rides along on
cross-site requests too, so the admin API's CSRF guard applies.
"""

from __future__ import annotations

import logging

from aiohttp import web

from roomcast import metrics
from roomcast.auth import TokenSource, authenticate, token_candidates
from roomcast.auth.reasons import describe
from roomcast.exceptions import AuthError, BrokerError, StoreError
from roomcast.logs import log_event
from roomcast.protocol import messages
from roomcast.refresh import grant_of
from roomcast.server.admin.bodies import RefreshBody, Refreshed
from roomcast.server.admin.guard import same_site_only
from roomcast.server.admin.inputs import read_body
from roomcast.server.admin.problems import ERROR_SCHEMA, Problem, json_response, with_schema
from roomcast.server.state import gateway
from roomcast.types import ConnId

_log = logging.getLogger("roomcast.refresh")
PATH = "/websocket/token/refresh"


async def refresh_route(request: web.Request) -> web.StreamResponse:
    try:
        return await _refresh(request)
    except Problem as problem:
        return with_schema(request, problem.response(), ERROR_SCHEMA)


async def _refresh(request: web.Request) -> web.Response:
    gw = gateway(request)
    try:
        found = await authenticate(token_candidates(request.headers, request.cookies),
                                   gw.verifier)
    except AuthError as exc:
        raise _refused(exc.reason) from None
    if found.source is TokenSource.COOKIE:
        same_site_only(request, gw.settings)
    body = await read_body(request, RefreshBody, limit=8192)
    claims = found.claims
    try:
        denied = await gw.node.denials.check(claims)
        mine = {c.id for c in await gw.node.registry.connections(user_id=claims.user_id)}
    except (StoreError, BrokerError) as exc:
        log_event(_log, "refresh_unavailable", logging.WARNING, error=str(exc))
        raise Problem(503, "unavailable", "try again later",
                      headers={"Retry-After": "1"}) from None
    if denied is not None:
        raise _refused(denied.reason)
    named = tuple(ConnId(c) for c in dict.fromkeys(body.connection_ids) if c in mine)
    if not named:
        raise Problem(404, "not_found", "none of these connections is yours (or open)")
    try:
        await gw.node.broker.publish_control(grant_of(claims, named))
    except BrokerError as exc:
        log_event(_log, "refresh_publish_failed", logging.WARNING, error=str(exc))
        raise Problem(503, "unavailable", "could not reach the other instances",
                      headers={"Retry-After": "1"}) from None
    log_event(_log, "cookie_refresh", user=claims.user_id, connections=len(named))
    return with_schema(request, json_response(
        {"user_id": claims.user_id, "connection_ids": list(named),
         "expires_at": messages.rfc3339(claims.expires_at)}), Refreshed.__name__)


def _refused(reason: str) -> Problem:
    metrics.TOKEN_REFRESHES.labels(reason).inc()
    return Problem(401, "unauthorized", describe(reason), reason=reason,
                   headers={"WWW-Authenticate": 'Bearer realm="roomcast"'})


def add_routes(app: web.Application, prefix: str = "") -> None:
    app.router.add_post(prefix + PATH, refresh_route)
