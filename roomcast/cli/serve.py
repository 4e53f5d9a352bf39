"""``roomcast serve``: run the gateway until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import sys
from typing import Any

from aiohttp import web

from roomcast import config, gctuning, logs
from roomcast.config import Settings
from roomcast.logs import log_event
from roomcast.server import workers
from roomcast.server.app import create_app
from roomcast.server.descriptors import DescriptorWatch, raise_fd_limit
from roomcast.server.guard import ConnectionGuard
from roomcast.server.state import GATEWAY
from roomcast.supervisor import supervise

_log = logging.getLogger("roomcast.server")


def register(sub: Any) -> None:
    """Add the ``serve`` subcommand with one flag per setting."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "serve",
        help="run the gateway",
        description="Run the roomcast gateway. Every flag can also be set by the environment "
        "variable named in its help; flags win.",
    )
    config.add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = config.load(args)
    logs.configure(settings.log_level, settings.log_format)
    ssl_context = settings.ssl_context()
    try:
        import uvloop

        runner_factory: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        runner_factory = asyncio.run
    role = workers.WorkerRole.from_env()
    if settings.workers > 1 and role is None:
        workers.check(settings)
        settings = dataclasses.replace(settings, port=workers.resolve_port(settings))
        return int(asyncio.run(workers.supervise(settings, args)))
    return int(runner_factory(_serve(settings, ssl_context, role)))


async def _serve(
    settings: Settings, ssl_context: Any, role: workers.WorkerRole | None = None
) -> int:
    soft, hard = raise_fd_limit()
    log_event(_log, "fd_limit", soft=soft, hard=hard)
    watch = DescriptorWatch()
    watch.install(asyncio.get_running_loop())
    watcher = supervise("descriptor_watch", watch.run)
    app = create_app(settings)
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=settings.shutdown_timeout,
        # The whole head is capped by the guard; aiohttp's per-line limits (8190 bytes by
        # default) would answer a bearer token with many groups a bare 400.
        max_line_size=settings.max_header_bytes, max_field_size=settings.max_header_bytes,
        max_headers=100,
        # Idle keep-alive connections (and a later request's head) are not held for an hour.
        keepalive_timeout=75.0,
    )
    await runner.setup()
    site = GuardedSite(
        app[GATEWAY].guard,
        runner,
        settings.host,
        settings.port,
        ssl_context=ssl_context,
        backlog=4096,
        reuse_address=True,
        # Workers of one `serve --workers N` share the port; the kernel spreads clients.
        reuse_port=role is not None,
    )
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        print(
            f"roomcast: cannot listen on {settings.host}:{settings.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 1
    gctuning.settle()
    port = _bound_port(runner) or settings.port
    scheme = "https" if ssl_context else "http"
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    base = f"{scheme}://{host}:{port}"
    ws_url = (
        settings.websocket_url
        or f"{'wss' if ssl_context else 'ws'}://{host}:{port}{settings.websocket_path}"
    )
    open_at = f"{base}/login" if settings.dev_login_enabled else f"{base}/websocket/status"
    if role is not None:
        role.announce(app[GATEWAY].node.server_id)
        workers.COLLECTOR.role = role
        log_event(_log, "listening", url=base, websocket=ws_url, worker=role.index)
        # The supervisor prints the banner once every worker listens.
        print(f"{workers.WORKER_BANNER}{role.index} listening on {base}", flush=True)
    else:
        log_event(_log, "listening", url=base, websocket=ws_url)
        print(f"roomcast listening on {base} (WebSocket {ws_url})", flush=True)
        print(f"Open {open_at}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    watcher.cancel()
    await runner.cleanup()
    return 0


class GuardedSite(web.TCPSite):
    """A TCP site whose connections go through the connection guard (server/guard.py)."""

    def __init__(self, guard: ConnectionGuard, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._guard = guard

    async def start(self) -> None:
        # TCPSite.start with aiohttp's protocol factory wrapped; no public hook exists.
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self._guard.protocol_factory(server),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
            # A TLS handshake counts against the same deadline as the request head.
            ssl_handshake_timeout=self._guard.timeout if self._ssl_context else None,
        )
        self._bound_port = self._server.sockets[0].getsockname()[1]


def _bound_port(runner: web.AppRunner) -> int | None:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return None
