"""The per-application state every HTTP handler reaches through ``request.app``."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from roomcast.auth import TokenVerifier
from roomcast.config import Settings
from roomcast.node import Node
from roomcast.writer import Flusher


@dataclass
class Gateway:
    """What one running gateway shares between its handlers."""

    settings: Settings
    node: Node
    flusher: Flusher
    #: Verifies handshake, admin and refresh tokens.
    verifier: TokenVerifier
    closing: bool = False


GATEWAY = web.AppKey("gateway", Gateway)


def gateway(request: web.Request) -> Gateway:
    return request.app[GATEWAY]
