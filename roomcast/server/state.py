"""The per-application state every HTTP handler reaches through ``request.app``."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from roomcast.config import Settings
from roomcast.hub import LocalConnection
from roomcast.node import Node
from roomcast.writer import Flusher


@dataclass
class Gateway:
    """What one running gateway shares between its handlers."""

    settings: Settings
    node: Node
    flusher: Flusher
    #: Open sockets, for shutdown (close with 1001) and liveness sweeps.
    sockets: dict[str, tuple[web.WebSocketResponse, LocalConnection]] = field(default_factory=dict)
    closing: bool = False


GATEWAY = web.AppKey("gateway", Gateway)


def gateway(request: web.Request) -> Gateway:
    return request.app[GATEWAY]
