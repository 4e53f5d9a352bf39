"""Who may call the admin API: administrators and app backends.

A Go gateway flaw not copied: the Go gateway let any logged-in user broadcast.
Here an administrator is a valid JWT (Bearer or cookie) with the admin scope or
a user id listed in ``ROOMCAST_ADMIN_USERS``; an app backend sends ``X-API-Key``.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from aiohttp import web

from roomcast import metrics
from roomcast.auth import (
    TokenSource,
    TokenVerifier,
    authenticate,
    is_admin,
    origin_allowed,
    token_candidates,
)
from roomcast.auth.reasons import describe
from roomcast.config import Settings
from roomcast.exceptions import AuthError
from roomcast.server.admin.problems import Problem
from roomcast.server.websocket import own_origin

API_KEY_HEADER = "X-API-Key"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="roomcast"'}


@dataclass(frozen=True, slots=True)
class Caller:
    """An authorized caller, for audit logs."""

    #: ``api_key`` or ``token``.
    kind: str
    #: The administrator's user id (None for an API key).
    user_id: str | None
    #: Authenticated by the browser's cookie, so cross-site requests are possible.
    by_cookie: bool

    @property
    def name(self) -> str:
        return self.user_id if self.user_id is not None else "api-key"


def _refuse(status: int, reason: str, message: str) -> Problem:
    metrics.AUTH_FAILURES.labels(reason).inc()
    error = "unauthorized" if status == 401 else "forbidden"
    headers = _WWW_AUTHENTICATE if status == 401 else None
    return Problem(status, error, message, reason=reason, headers=headers)


async def authorize(request: web.Request, settings: Settings, verifier: TokenVerifier) -> Caller:
    """The caller, if an administrator or app backend.

    Raises:
        Problem: 401 without valid credentials, 403 for a non-admin user or a
            cross-site request riding on the cookie.
    """
    key = request.headers.get(API_KEY_HEADER)
    if key is not None:
        # An API key, even a wrong one, decides alone: no fall-through to the cookie.
        expected = settings.api_key
        # Bytes that are not UTF-8 arrive as lone surrogates: such a key is just wrong.
        given = key.encode("utf-8", "surrogateescape")
        if expected is None or not hmac.compare_digest(given, expected.encode()):
            raise _refuse(401, "bad_api_key", "wrong API key")
        return Caller("api_key", None, by_cookie=False)
    try:
        found = await authenticate(token_candidates(request.headers, request.cookies), verifier)
    except AuthError as exc:
        raise _refuse(401, exc.reason, describe(exc.reason)) from None
    claims = found.claims
    if not is_admin(claims, admin_scope=settings.admin_scope, admin_users=settings.admin_users):
        raise _refuse(403, "not_admin", "administrators only")
    # Where the token came from, not which headers are present: a browser's cached Basic
    # Authorization rides along with the cookie on a cross-site request too.
    caller = Caller("token", claims.user_id, by_cookie=found.source is TokenSource.COOKIE)
    if caller.by_cookie and request.method not in _SAFE_METHODS:
        same_site_only(request, settings)
    return caller


def same_site_only(request: web.Request, settings: Settings) -> None:
    """Refuse cross-site request forgery: a cookie rides along on any site's form post.

    The Origin must be ours or an allowed one, and a body must be JSON (a cross-site
    form cannot send ``application/json`` without a CORS preflight, which we never grant).
    """
    origin = request.headers.get("Origin")
    if origin is not None and not origin_allowed(origin, settings.allowed_origins,
                                                 own_origin(request)):
        raise _refuse(403, "cross_site", "cross-site request refused (Origin not allowed)")
    if request.body_exists and request.content_type != "application/json":
        raise Problem(415, "unsupported_media_type", "the body must be application/json")
