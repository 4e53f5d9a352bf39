"""The per-application state every HTTP handler reaches through ``request.app``."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from roomcast.auth import TokenVerifier
from roomcast.config import Settings
from roomcast.node import Node
from roomcast.refresh import TokenRefresher
from roomcast.server.guard import ConnectionGuard
from roomcast.server.quotas import Quota
from roomcast.writer import Flusher


@dataclass
class Gateway:
    """What one running gateway shares between its handlers."""

    settings: Settings
    node: Node
    flusher: Flusher
    #: Verifies handshake, admin and refresh tokens.
    verifier: TokenVerifier
    #: Deadline and limits of unfinished handshakes (see server/guard.py).
    guard: ConnectionGuard
    #: Applies token refreshes (in-band, the cookie route, other instances').
    refresher: TokenRefresher | None = None
    #: Connections held per user and per client IP on this instance.
    per_user: Quota = field(default_factory=lambda: Quota(0))
    per_ip: Quota = field(default_factory=lambda: Quota(0))
    closing: bool = False


GATEWAY = web.AppKey("gateway", Gateway)


def gateway(request: web.Request) -> Gateway:
    return request.app[GATEWAY]
