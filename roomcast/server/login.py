"""The development login: a form that mints a token into the ``falcon_auth_token`` cookie.

Its tokens live ``ROOMCAST_DEV_TOKEN_TTL`` seconds (5 minutes by default), short on
purpose so the demo shows expiry and refresh: ``POST /login/renew`` re-mints the cookie
of a still-valid one, as an application's login flow would, and the page then hands
it to its connection (``client.js``, the refresh route).
"""

from __future__ import annotations

import html
import re
import time

from aiohttp import web

from roomcast.auth import (
    COOKIE_NAME,
    TokenSource,
    authenticate,
    is_admin,
    mint_token,
    token_candidates,
)
from roomcast.exceptions import AuthError, StoreError
from roomcast.protocol.messages import rfc3339
from roomcast.server.admin.guard import same_site_only
from roomcast.server.admin.problems import Problem, json_response, problem_response
from roomcast.server.state import gateway
from roomcast.server.websocket import own_origin
from roomcast.types import GroupId, UserId

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>roomcast - development login</title>
<link rel="stylesheet" href="/static/login.css">
</head><body>
<main class="login">
<h1>roomcast</h1>
<p class="hint">Development login: anyone can be anyone.
It is off whenever <code>JWT_SECRET</code> is set.</p>
{error}
<form method="post" action="/login">
<label>User id <input name="user_id" required pattern="[A-Za-z0-9][A-Za-z0-9_.@\\-]{{0,63}}"
  autocomplete="username" value="{user_id}"></label>
<label>Display name <input name="name" maxlength="64" value="{name}"></label>
<label>Groups <input name="groups" placeholder="e.g. red, blue:Blue team" value="{groups}"></label>
<label class="check"><input type="checkbox" name="admin" value="1"> Administrator</label>
<button type="submit">Log in</button>
</form>
</main></body></html>
"""


def _page(error: str = "", user_id: str = "", name: str = "", groups: str = "") -> str:
    err = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    return _PAGE.format(
        error=err, user_id=html.escape(user_id), name=html.escape(name), groups=html.escape(groups)
    )


def parse_groups(raw: str) -> list[tuple[GroupId, str | None]]:
    """``"red, blue:Blue team"`` -> ``[("red", None), ("blue", "Blue team")]``."""
    out: list[tuple[GroupId, str | None]] = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        gid, _, name = item.partition(":")
        gid = gid.strip()
        if not _ID.fullmatch(gid):
            raise ValueError(f"invalid group id {gid[:64]!r}")
        out.append((GroupId(gid), name.strip()[:64] or None))
    return out


async def login_form(request: web.Request) -> web.Response:
    return web.Response(text=_page(), content_type="text/html")


def _cross_site(request: web.Request) -> bool:
    """Whether a browser says this request comes from another site's page.

    The form mints any user (an administrator too) and writes memberships: a cross-site
    form POST must not do that with the visitor's browser. Requests without these
    headers (curl, scripts) are not a browser's cross-site request.
    """
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return True
    origin = request.headers.get("Origin")
    return origin is not None and origin.lower() != own_origin(request)


async def login(request: web.Request) -> web.Response:
    gw = gateway(request)
    if _cross_site(request):
        return problem_response(403, "cross-site login refused", code="forbidden",
                                reason="origin", request=request)
    form = await request.post()
    user_id = str(form.get("user_id", "")).strip()
    name = str(form.get("name", "")).strip()[:64] or user_id
    raw_groups = str(form.get("groups", ""))
    if not _ID.fullmatch(user_id):
        return web.Response(
            text=_page("User id: letters, digits, _ . @ - (max 64).", user_id, name, raw_groups),
            content_type="text/html",
            status=422,
        )
    try:
        groups = parse_groups(raw_groups)
    except ValueError as exc:
        return web.Response(
            text=_page(str(exc), user_id, name, raw_groups), content_type="text/html", status=422
        )
    for gid, gname in groups:
        await gw.node.change_membership(UserId(user_id), gid, gname, joined=True)
    scopes = gw.settings.admin_scope if form.get("admin") else ""
    ttl = gw.settings.dev_token_ttl
    token = mint_token(gw.settings.jwt_secret or "", user_id, name=name, scopes=scopes, ttl=ttl)
    response = web.HTTPSeeOther("/")
    set_auth_cookie(response, token, secure=request.secure, max_age=ttl)
    raise response


async def renew(request: web.Request) -> web.Response:
    """A fresh dev cookie for the holder of a valid one (same user, name and scopes)."""
    gw = gateway(request)
    try:
        found = await authenticate(token_candidates(request.headers, request.cookies),
                                   gw.verifier)
        if found.source is TokenSource.COOKIE:
            same_site_only(request, gw.settings)
        denied = await gw.node.denials.check(found.claims)
    except AuthError as exc:
        return problem_response(401, "not logged in", code="unauthorized", reason=exc.reason,
                                request=request)
    except Problem as problem:
        return problem.response()
    except StoreError:
        return problem_response(503, "try again later", code="unavailable", request=request)
    if denied is not None:
        return problem_response(401, "logged out", code="unauthorized", reason=denied.reason,
                                request=request)
    claims, ttl = found.claims, gw.settings.dev_token_ttl
    token = mint_token(gw.settings.jwt_secret or "", claims.user_id, name=claims.character_name,
                       character_id=claims.character_id, scopes=" ".join(sorted(claims.scopes)),
                       ttl=ttl)
    response = json_response({"user_id": claims.user_id,
                              "expires_at": rfc3339(int(time.time()) + int(ttl))})
    set_auth_cookie(response, token, secure=request.secure, max_age=ttl)
    return response


def set_auth_cookie(response: web.StreamResponse, token: str, *, secure: bool,
                    max_age: float) -> None:
    """``secure``: the client came over https (our TLS, or a trusted proxy's)."""
    response.set_cookie(
        COOKIE_NAME,
        token,
        httponly=True,
        samesite="Lax",
        secure=secure,
        path="/",
        max_age=int(max_age),
    )


async def logout(request: web.Request) -> web.Response:
    response = web.HTTPSeeOther("/login")
    response.del_cookie(COOKIE_NAME, path="/")
    raise response


async def me(request: web.Request) -> web.Response:
    """Who the cookie or bearer token says the caller is (for the pages)."""
    gw = gateway(request)
    try:
        claims = (
            await authenticate(token_candidates(request.headers, request.cookies), gw.verifier)
        ).claims
    except AuthError as exc:
        return problem_response(401, "not logged in", code="unauthorized", reason=exc.reason,
                                request=request)
    groups = await gw.node.entitled_groups(claims.user_id, claims.groups)
    return web.json_response(
        {
            "user_id": claims.user_id,
            "name": claims.character_name,
            "character_id": claims.character_id,
            "groups": [{"id": g.id, "name": g.name} for g in groups],
            "admin": is_admin(
                claims, admin_scope=gw.settings.admin_scope, admin_users=gw.settings.admin_users
            ),
            "websocket_path": gw.settings.websocket_path,
            "expires_at": rfc3339(claims.expires_at),
            "api_prefix": gw.settings.api_prefix,
        }
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/login/renew", renew)
    app.router.add_post("/logout", logout)
