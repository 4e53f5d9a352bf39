"""Static pages and the browser client module, served from ``roomcast/web``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

WEB_DIR = Path(__file__).resolve().parent.parent / "web"


def _file(relative: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        path = WEB_DIR / relative
        if not path.is_file():
            raise web.HTTPNotFound(text=f"{relative} is not built into this roomcast")
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    return handler


def add_routes(app: web.Application, *, demo: bool) -> None:
    app.router.add_get("/websocket/client.js", _file("client.js"))
    app.router.add_get("/websocket/tanstack.js", _file("tanstack.js"))
    # client.js imports it as ./positions.js: next to it under both prefixes.
    app.router.add_get("/websocket/positions.js", _file("positions.js"))
    for module in ("presence.js", "recent.js", "status.js", "react.js"):
        app.router.add_get(f"/websocket/{module}", _file(module))
    app.router.add_get("/admin", _file("admin/index.html"))
    if demo:
        app.router.add_get("/", _file("demo/index.html"))
    app.router.add_static("/static/", WEB_DIR, show_index=False, follow_symlinks=False)
