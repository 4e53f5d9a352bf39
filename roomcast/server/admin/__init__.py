"""The admin / server HTTP API of the Go gateway, its OpenAPI spec and docs, and ``/metrics``.

``create_app`` calls :func:`add_routes`. Importing this package stays cheap
(``roomcast.api`` reads :mod:`.bodies` without the server).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web


def add_routes(app: web.Application, prefix: str = "") -> None:
    """Register the admin API, its OpenAPI document, schemas and docs under ``prefix``
    (``API_PREFIX``), the dashboard's live socket and ``/metrics``."""
    from roomcast.server import openapi
    from roomcast.server.admin import live, routes, scrape

    routes.add_routes(app, prefix)
    live.add_routes(app)
    openapi.add_routes(app, prefix)
    app.router.add_get("/metrics", scrape.scrape)
