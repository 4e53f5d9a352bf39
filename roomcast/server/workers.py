"""``roomcast serve --workers N``: N worker processes on one port, and their supervisor.

The supervisor (the process the user started) checks that the platform has
``SO_REUSEPORT`` and that Redis is configured (workers are separate instances: a
room's members on other workers are reached only through Redis), then starts N
``roomcast serve`` processes that each bind the same port with ``SO_REUSEPORT``;
the kernel spreads new connections over them. It prints one banner once every
worker listens, restarts a worker that dies (logged, with a capped backoff for one
that keeps dying), and on SIGTERM/SIGINT sends SIGTERM to every worker, each of
which drains as a single instance does, and waits for them all.

The supervisor keeps a small table of its workers (pid, restarts, last exit) in a
directory it shares with them; each worker adds its ``server_id``. A worker reads
the table to show every worker in ``/websocket/status`` and ``/metrics``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from roomcast.config import Settings
from roomcast.exceptions import ConfigError
from roomcast.logs import log_event
from roomcast.metrics import REGISTRY

_log = logging.getLogger("roomcast.workers")

#: Set by the supervisor in each worker's environment.
INDEX_ENV: Final = "ROOMCAST_WORKER_INDEX"
STATE_ENV: Final = "ROOMCAST_WORKER_STATE"
#: A worker that lived at least this long restarts at once; one that dies sooner
#: waits twice as long as the last time (capped), so a crash loop cannot spin.
STABLE_AFTER: Final = 10.0
MAX_BACKOFF: Final = 10.0
_TABLE: Final = "supervisor.json"
_PR_SET_PDEATHSIG: Final = 1
#: Worker banner lines start with this; the supervisor prints the banner for all.
WORKER_BANNER: Final = "roomcast worker "


def check(settings: Settings) -> None:
    """Why ``--workers N`` cannot run here, as a ConfigError (nothing when it can)."""
    if settings.workers <= 1:
        return
    if not settings.redis_url:
        raise ConfigError(
            f"--workers {settings.workers} needs REDIS_URL: each worker is a separate "
            "instance, and a room's members on the other workers are reached only "
            "through Redis"
        )
    if not reuse_port_available():
        raise ConfigError(
            "--workers needs SO_REUSEPORT, which this platform does not have: run one "
            "roomcast serve per port behind a load balancer instead"
        )


def reuse_port_available() -> bool:
    """Whether sockets here can share a port with SO_REUSEPORT."""
    option = getattr(socket, "SO_REUSEPORT", None)
    if option is None:
        return False
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, option, 1)
    except OSError:
        return False
    return True


# -- the worker's side ----------------------------------------------------------------


@dataclass(frozen=True)
class WorkerRole:
    """What a worker knows of its place: its index and the shared directory."""

    index: int
    state_dir: Path

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> WorkerRole | None:
        """This process's role, or None when it is not a supervised worker."""
        index, state = environ.get(INDEX_ENV), environ.get(STATE_ENV)
        if index is None or state is None:
            return None
        return cls(int(index), Path(state))

    def announce(self, server_id: str) -> None:
        """Record this worker's server id for the others' status pages."""
        _write_json(
            self.state_dir / f"worker-{self.index}.json",
            {"index": self.index, "pid": os.getpid(), "server_id": server_id},
        )

    def table(self) -> dict[str, Any]:
        """Every worker: the supervisor's table joined with each worker's server id."""
        table = _read_json(self.state_dir / _TABLE) or {"count": 0, "workers": []}
        for row in table.get("workers", []):
            own = _read_json(self.state_dir / f"worker-{row['index']}.json") or {}
            row["server_id"] = own.get("server_id") if own.get("pid") == row.get("pid") else None
        table["this"] = self.index
        return table


class WorkersCollector(Collector):
    """``roomcast_workers`` and ``roomcast_worker_restarts``, read from the table at scrape."""

    def __init__(self) -> None:
        self.role: WorkerRole | None = None

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        alive = GaugeMetricFamily(
            "roomcast_workers", "Worker processes running on this port (1 without --workers)"
        )
        this = GaugeMetricFamily(
            "roomcast_worker_index", "Index of the worker that answered this scrape"
        )
        restarts = CounterMetricFamily(
            "roomcast_worker_restarts", "Times the supervisor restarted a worker", labels=["worker"]
        )
        role = self.role
        if role is None:
            alive.add_metric([], 1)
            this.add_metric([], 0)
        else:
            table = role.table()
            rows = table.get("workers", [])
            alive.add_metric([], sum(1 for row in rows if row.get("alive")))
            this.add_metric([], role.index)
            for row in rows:
                restarts.add_metric([str(row["index"])], row.get("restarts", 0))
        yield alive
        yield this
        yield restarts


COLLECTOR: Final = WorkersCollector()
REGISTRY.register(COLLECTOR)


# -- the supervisor -----------------------------------------------------------------


@dataclass
class _Worker:
    index: int
    proc: asyncio.subprocess.Process | None = None
    started: float = 0.0
    restarts: int = 0
    backoff: float = 0.0
    last_exit: int | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)


class Supervisor:
    """Starts, watches, restarts and stops the workers of one ``serve --workers N``."""

    def __init__(self, settings: Settings, argv: list[str], state_dir: Path) -> None:
        self.settings = settings
        self.argv = argv
        self.state_dir = state_dir
        self.workers = [_Worker(i) for i in range(settings.workers)]
        self.stopping = False
        self._pumps: set[asyncio.Task[None]] = set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        for worker in self.workers:
            await self._spawn(worker)
        ready = asyncio.create_task(_until(*(w.ready for w in self.workers)))
        watchers = {asyncio.create_task(self._watch(w)) for w in self.workers}
        stopped = asyncio.create_task(_until(stop))
        await asyncio.wait([stopped, ready], return_when=asyncio.FIRST_COMPLETED)
        if ready.done():
            self._banner()
        await stopped
        await self._stop_all()
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        ready.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ready
        await asyncio.gather(*self._pumps, return_exceptions=True)
        return 0

    def _banner(self) -> None:
        s = self.settings
        host = "127.0.0.1" if s.host in ("0.0.0.0", "::", "") else s.host
        scheme = "https" if s.tls else "http"
        base = f"{scheme}://{host}:{s.port}"
        ws_url = s.websocket_url or f"{'wss' if s.tls else 'ws'}://{host}:{s.port}{s.websocket_path}"
        log_event(_log, "workers_listening", url=base, workers=len(self.workers))
        print(f"roomcast listening on {base} (WebSocket {ws_url}), {len(self.workers)} workers",
              flush=True)
        print(f"Open {base}/websocket/status", flush=True)

    async def _spawn(self, worker: _Worker) -> None:
        env = {**os.environ, INDEX_ENV: str(worker.index), STATE_ENV: str(self.state_dir)}
        worker.ready.clear()
        worker.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "roomcast", "serve", *self.argv,
            env=env, stdout=asyncio.subprocess.PIPE, preexec_fn=_die_with_parent,
        )
        worker.started = time.monotonic()
        log_event(_log, "worker_started", worker=worker.index, pid=worker.proc.pid,
                  restarts=worker.restarts)
        self._write_table()
        pump = asyncio.create_task(self._pump(worker, worker.proc))
        self._pumps.add(pump)
        pump.add_done_callback(self._pumps.discard)

    async def _pump(self, worker: _Worker, proc: asyncio.subprocess.Process) -> None:
        """Pass a worker's stdout on; its banner means it listens."""
        assert proc.stdout is not None
        async for raw in proc.stdout:
            line = raw.decode(errors="replace")
            if line.startswith(WORKER_BANNER):
                worker.ready.set()
            sys.stdout.write(line)
            sys.stdout.flush()

    async def _watch(self, worker: _Worker) -> None:
        """Restart the worker each time it exits, until the supervisor stops."""
        while True:
            proc = worker.proc
            assert proc is not None
            code = await proc.wait()
            if self.stopping:
                return
            lived = time.monotonic() - worker.started
            worker.last_exit = code
            worker.backoff = (
                0.0 if lived >= STABLE_AFTER else min(MAX_BACKOFF, max(0.5, worker.backoff * 2))
            )
            log_event(_log, "worker_exited", logging.ERROR, worker=worker.index, pid=proc.pid,
                      code=code, lived_s=round(lived, 1), restart_in_s=worker.backoff)
            worker.proc = None
            self._write_table()
            await asyncio.sleep(worker.backoff)
            if self.stopping:
                return
            worker.restarts += 1
            await self._spawn(worker)

    async def _stop_all(self) -> None:
        """SIGTERM every worker (each drains its connections) and wait for all of them."""
        self.stopping = True
        procs = [w.proc for w in self.workers if w.proc is not None]
        log_event(_log, "workers_stopping", workers=len(procs))
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        deadline = self.settings.shutdown_timeout + 15.0
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), deadline)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        for worker in self.workers:
            worker.proc = None
        self._write_table()
        log_event(_log, "workers_stopped")

    def _write_table(self) -> None:
        rows = [
            {
                "index": w.index,
                "pid": w.proc.pid if w.proc is not None else None,
                "alive": w.proc is not None and w.proc.returncode is None,
                "restarts": w.restarts,
                "last_exit": w.last_exit,
            }
            for w in self.workers
        ]
        _write_json(self.state_dir / _TABLE,
                    {"count": len(self.workers), "supervisor_pid": os.getpid(), "workers": rows})


def worker_argv(args: argparse.Namespace, settings: Settings) -> list[str]:
    """The flags a worker gets: the user's own, one worker each, on the resolved port."""
    argv: list[str] = []
    for name, value in vars(args).items():
        if name in ("func", "command", "workers", "port") or value is None:
            continue
        argv += ["--" + name.replace("_", "-"), str(value)]
    return [*argv, "--port", str(settings.port), "--workers", "1"]


def resolve_port(settings: Settings) -> int:
    """The port every worker binds: ``--port 0`` picks one free port for all of them."""
    if settings.port:
        return settings.port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((settings.host or "0.0.0.0", 0))
        port: int = sock.getsockname()[1]
        return port


async def supervise(settings: Settings, args: argparse.Namespace) -> int:
    """Run ``settings.workers`` workers until SIGTERM/SIGINT; the exit code."""
    with tempfile.TemporaryDirectory(prefix="roomcast-workers-") as tmp:
        supervisor = Supervisor(settings, worker_argv(args, settings), Path(tmp))
        return await supervisor.run()


async def _until(*events: asyncio.Event) -> None:
    for event in events:
        await event.wait()


def _die_with_parent() -> None:
    """``preexec_fn``: a worker gets SIGTERM if the supervisor dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
