"""The development login: a form that mints a token into the ``falcon_auth_token`` cookie."""

from __future__ import annotations

import html
import re

from aiohttp import web

from roomcast.auth import COOKIE_NAME, authenticate, is_admin, mint_token, token_candidates
from roomcast.exceptions import AuthError
from roomcast.server.admin.problems import problem_response
from roomcast.server.state import gateway
from roomcast.types import GroupId, UserId

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
TOKEN_TTL = 12 * 3600

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
        if not _ID.match(gid):
            raise ValueError(f"invalid group id {gid[:64]!r}")
        out.append((GroupId(gid), name.strip()[:64] or None))
    return out


async def login_form(request: web.Request) -> web.Response:
    return web.Response(text=_page(), content_type="text/html")


async def login(request: web.Request) -> web.Response:
    gw = gateway(request)
    form = await request.post()
    user_id = str(form.get("user_id", "")).strip()
    name = str(form.get("name", "")).strip()[:64] or user_id
    raw_groups = str(form.get("groups", ""))
    if not _ID.match(user_id):
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
    token = mint_token(
        gw.settings.jwt_secret or "", user_id, name=name, scopes=scopes, ttl=TOKEN_TTL
    )
    response = web.HTTPSeeOther("/")
    set_auth_cookie(response, token, secure=request.secure)
    raise response


def set_auth_cookie(response: web.StreamResponse, token: str, *, secure: bool) -> None:
    """``secure``: the client came over https (our TLS, or a trusted proxy's)."""
    response.set_cookie(
        COOKIE_NAME,
        token,
        httponly=True,
        samesite="Lax",
        secure=secure,
        path="/",
        max_age=TOKEN_TTL,
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
            "api_prefix": gw.settings.api_prefix,
        }
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
