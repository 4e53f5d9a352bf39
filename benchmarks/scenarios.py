"""How each compared stack is started: servers on the server CPU, addresses for the generator."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.common import BENCH_ROOM, GENERATOR_CPU, SERVER_CPU, free_port
from benchmarks.procs import GeneratorProc, ProcessGroup, wait_port

JWT_SECRET = "roomcast-bench-secret-0123456789abcdef"
API_KEY = "roomcast-bench-api-key"


@dataclass
class Options:
    """Runner options a scenario needs."""

    trigger: str = "auto"  # roomcast: "auto" | "ws" | "http"
    roomcast_env: dict[str, str] = field(default_factory=dict)
    #: Put before every server's argv (e.g. valgrind for instruction counts).
    wrap: list[str] = field(default_factory=list)
    #: Seconds a server may take to open its port (much longer under valgrind).
    start_timeout_s: float = 20.0


@dataclass
class ServerSet:
    """What a started scenario gives the generator and the meters."""

    protocol: str
    urls: list[str]
    pids: list[int]
    aux_pids: list[int] = field(default_factory=list)
    #: The redis-server of a stack with one (its commands are counted per connection).
    redis_port: int | None = None
    trigger: str = "ws"
    http_url: str = ""
    api_key: str = ""
    jwt_secret: str = JWT_SECRET
    notes: list[str] = field(default_factory=list)
    #: Stops the servers gracefully and starts them again on the same ports (new pids),
    #: for the reconnect storm; None where a restart means nothing (no recovery).
    restart: Callable[[], Awaitable[list[int]]] | None = None
    #: More ``loadgen.Config`` fields this stack needs.
    gen: dict[str, Any] = field(default_factory=dict)


Starter = Callable[[ProcessGroup, Options], Awaitable[ServerSet]]


async def start_generator(
    procs: ProcessGroup, servers: ServerSet, n: int, log_dir: Path, **config: Any
) -> GeneratorProc:
    """The load generator for ``servers`` on the generator CPU (``config``: more of its
    ``loadgen.Config`` fields)."""
    cfg = {
        "protocol": servers.protocol,
        "urls": servers.urls,
        "n": n,
        "jwt_secret": servers.jwt_secret,
        "trigger": servers.trigger,
        "http_url": servers.http_url,
        "api_key": servers.api_key,
        "server_pids": servers.pids,
        "aux_pids": servers.aux_pids,
        **servers.gen,
        **config,
    }
    proc = await procs.spawn(
        "generator",
        [sys.executable, "-m", "benchmarks.loadgen", json.dumps(cfg)],
        GENERATOR_CPU,
        pipes=True,
    )
    return GeneratorProc(proc, log_dir / "generator.log")


async def _server(
    procs: ProcessGroup,
    opts: Options,
    name: str,
    argv: list[str],
    port: int,
    env: dict[str, str] | None = None,
) -> int:
    proc = await procs.spawn(name, [*opts.wrap, *argv], SERVER_CPU, env=env)
    await wait_port(port, proc, procs.log_of(proc), opts.start_timeout_s)
    return proc.pid


async def start_bare(procs: ProcessGroup, opts: Options, mode: str = "frame") -> ServerSet:
    port = free_port()
    argv = [sys.executable, "-m", "benchmarks.servers.bare", "--port", str(port), "--mode", mode]
    pid = await _server(procs, opts, f"bare-{mode}", argv, port)
    return ServerSet("bare", [f"ws://127.0.0.1:{port}/ws"], [pid])


async def start_bare_http(procs: ProcessGroup, opts: Options) -> ServerSet:
    """The bare server, its messages POSTed like roomcast's through the API."""
    servers = await start_bare(procs, opts)
    port = int(servers.urls[0].split(":")[2].split("/")[0])
    servers.trigger = "http"
    servers.http_url = f"http://127.0.0.1:{port}/websocket/rooms/{BENCH_ROOM}/message"
    servers.api_key = API_KEY
    return servers


async def start_bare_send(procs: ProcessGroup, opts: Options) -> ServerSet:
    return await start_bare(procs, opts, mode="send")


async def start_socketio(procs: ProcessGroup, opts: Options) -> ServerSet:
    port = free_port()
    argv = [sys.executable, "-m", "benchmarks.servers.sio", "--port", str(port)]
    pid = await _server(procs, opts, "socketio", argv, port)
    url = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
    return ServerSet("socketio", [url], [pid])


NODE_DIR = Path(__file__).resolve().parent / "servers" / "node"


async def node_setup() -> str:
    """``node`` on the PATH, the Node peers' packages installed (``npm ci`` once)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise RuntimeError("node/npm not found (Node.js 20 or later)")
    # npm writes node_modules/.package-lock.json at the end of an install: when it is
    # missing (none, or a broken one) or older than the lock file (the pins moved on),
    # the packages are installed again.
    installed = NODE_DIR / "node_modules" / ".package-lock.json"
    lock = NODE_DIR / "package-lock.json"
    if not installed.is_file() or installed.stat().st_mtime < lock.stat().st_mtime:
        proc = await asyncio.create_subprocess_exec(
            npm, "ci", "--no-audit", "--no-fund", cwd=NODE_DIR,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"npm ci failed in {NODE_DIR}:\n{out.decode()[-2000:]}")
    return node


async def start_node_ws(procs: ProcessGroup, opts: Options) -> ServerSet:
    node = await node_setup()
    port = free_port()
    argv = [node, str(NODE_DIR / "ws.js"), "--port", str(port)]
    pid = await _server(procs, opts, "node-ws", argv, port)
    return ServerSet("bare", [f"ws://127.0.0.1:{port}/ws"], [pid])


async def start_node_socketio(procs: ProcessGroup, opts: Options) -> ServerSet:
    node = await node_setup()
    port = free_port()
    argv = [node, str(NODE_DIR / "socketio.js"), "--port", str(port)]
    pid = await _server(procs, opts, "node-socketio", argv, port)
    url = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
    # JSON.stringify writes no spaces: the padding is computed for that.
    return ServerSet("socketio", [url], [pid], gen={"compact_json": True})


def roomcast_env(
    procs: ProcessGroup, opts: Options, redis_url: str | None = None
) -> dict[str, str]:
    """Environment of ``roomcast serve`` in the benchmark (its own SQLite file per run)."""
    env = {
        "JWT_SECRET": JWT_SECRET,
        "JWT_ISSUER": "go-falcon",
        "ROOMCAST_DEV_LOGIN": "0",
        "ROOMCAST_DEMO": "0",
        "ROOMCAST_API_KEY": API_KEY,
        "ROOMCAST_DB": str(procs.log_dir / "roomcast.db"),
        # Publishing through a member WebSocket (until the API exists, or --trigger ws)
        # would hit the per-connection flood limit (50/s, burst 200) at M=200.
        "ROOMCAST_CLIENT_RATE": "1000000",
        "ROOMCAST_CLIENT_BURST": "1000000",
        # Every generated client connects from 127.0.0.1: no per-address cap.
        "ROOMCAST_MAX_CONNECTIONS_PER_IP": "0",
        # Streams outlive a graceful restart (the reconnect storm recovers from them).
        "ROOMCAST_HISTORY_SNAPSHOT": str(procs.log_dir / "history.snapshot"),
    }
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(opts.roomcast_env)
    return env


async def _start_roomcast(
    procs: ProcessGroup, opts: Options, name: str, env: dict[str, str], port: int = 0
) -> tuple[int, int]:
    port = port or free_port()
    argv = [sys.executable, "-m", "roomcast", "serve", "--host", "127.0.0.1", "--port", str(port)]
    pid = await _server(procs, opts, name, argv, port, env=env)
    return port, pid


def _restarter(
    procs: ProcessGroup, opts: Options, servers: ServerSet, env: dict[str, str]
) -> Callable[[], Awaitable[list[int]]]:
    """SIGTERM every roomcast server (each drains and saves its streams), then the same
    servers on the same ports."""

    async def restart() -> list[int]:
        ports = [int(url.split(":")[2].split("/")[0]) for url in servers.urls]
        running = {proc.pid: proc for _, proc, _ in procs.children}
        for pid in servers.pids:
            running[pid].terminate()
        for pid in servers.pids:
            await asyncio.wait_for(running[pid].wait(), 60)
        started = await asyncio.gather(*(
            _start_roomcast(procs, opts, f"roomcast-restarted-{i}", env, port)
            for i, port in enumerate(ports)
        ))
        servers.pids = [pid for _, pid in started]
        return servers.pids

    return restart


async def api_available(port: int) -> bool:
    """Whether the room-message API route exists (not aiohttp's bare 404/405)."""
    url = f"http://127.0.0.1:{port}/websocket/rooms/{BENCH_ROOM}/message"
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                url,
                json={"type": "message", "data": {"probe": True}},
                headers={"X-API-Key": API_KEY},
                timeout=aiohttp.ClientTimeout(total=5),
            ) as resp,
        ):
            body = await resp.read()
            missing = resp.status == 405 or (
                resp.status == 404 and body.startswith(b"404: Not Found")
            )
            return not missing
    except (aiohttp.ClientError, TimeoutError):
        return False


async def _trigger_for(port: int, opts: Options, servers: ServerSet) -> None:
    if opts.trigger == "ws":
        servers.trigger = "ws"
    elif opts.trigger == "http" or await api_available(port):
        servers.trigger = "http"
    else:
        servers.trigger = "ws"
        servers.notes.append("server API absent: published through a member WebSocket")
    if servers.trigger == "http":
        servers.http_url = f"http://127.0.0.1:{port}/websocket/rooms/{BENCH_ROOM}/message"
        servers.api_key = API_KEY


async def start_roomcast(procs: ProcessGroup, opts: Options) -> ServerSet:
    env = roomcast_env(procs, opts)
    port, pid = await _start_roomcast(procs, opts, "roomcast", env)
    servers = ServerSet("roomcast", [f"ws://127.0.0.1:{port}/websocket/connect"], [pid])
    servers.restart = _restarter(procs, opts, servers, env)
    await _trigger_for(port, opts, servers)
    return servers


#: History off for both room kinds (it is on by default): the cost of history is the
#: difference between "roomcast" and this row.
NO_HISTORY = {"ROOMCAST_HISTORY_USER_SIZE": "0", "ROOMCAST_HISTORY_GROUP_SIZE": "0"}


async def start_roomcast_nohistory(procs: ProcessGroup, opts: Options) -> ServerSet:
    env = {**roomcast_env(procs, opts), **NO_HISTORY}
    port, pid = await _start_roomcast(procs, opts, "roomcast", env)
    servers = ServerSet("roomcast", [f"ws://127.0.0.1:{port}/websocket/connect"], [pid])
    await _trigger_for(port, opts, servers)
    return servers


async def start_roomcast_deflate(procs: ProcessGroup, opts: Options) -> ServerSet:
    env = {**roomcast_env(procs, opts), "ROOMCAST_PERMESSAGE_DEFLATE": "on"}
    port, pid = await _start_roomcast(procs, opts, "roomcast", env)
    url = f"ws://127.0.0.1:{port}/websocket/connect"
    servers = ServerSet("roomcast", [url], [pid], gen={"deflate": True})
    await _trigger_for(port, opts, servers)
    servers.notes.append("receivers offer permessage-deflate; the trigger connection does not")
    return servers


async def start_redis(procs: ProcessGroup) -> tuple[int, int]:
    """redis-server on a free port (never wrapped: only the servers are measured)."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server not found (apt-get install redis-server)")
    port = free_port()
    argv = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    argv += ["--protected-mode", "yes", "--loglevel", "warning"]
    pid = await _server(procs, Options(), "redis", argv, port)
    return port, pid


async def start_roomcast_redis(procs: ProcessGroup, opts: Options) -> ServerSet:
    redis_port, redis_pid = await start_redis(procs)
    env = roomcast_env(procs, opts, f"redis://127.0.0.1:{redis_port}/0")
    (p1, pid1), (p2, pid2) = await asyncio.gather(
        _start_roomcast(procs, opts, "roomcast-a", env),
        _start_roomcast(procs, opts, "roomcast-b", env),
    )
    urls = [f"ws://127.0.0.1:{p}/websocket/connect" for p in (p1, p2)]
    servers = ServerSet("roomcast", urls, [pid1, pid2], aux_pids=[redis_pid],
                        redis_port=redis_port)
    servers.restart = _restarter(procs, opts, servers, env)
    await _trigger_for(p1, opts, servers)
    servers.notes.append("two instances + redis on the server CPU; publishes on instance a")
    return servers


async def start_redis_cluster(procs: ProcessGroup) -> tuple[int, list[int]]:
    """A Redis Cluster of three masters and a replica each (free ports, no persistence),
    joined by ``redis-cli --cluster create``; the first node's port and every pid."""
    exe, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if exe is None or cli is None:
        raise RuntimeError("redis-server or redis-cli not found (apt-get install redis-server)")
    ports, pids = [], []
    for i in range(6):
        port = free_port()
        directory = procs.log_dir / f"redis-node{i}"
        directory.mkdir(parents=True, exist_ok=True)
        argv = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--protected-mode", "yes", "--loglevel", "warning",
                "--dir", str(directory), "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf", "--cluster-port", str(free_port())]
        pids.append(await _server(procs, Options(), f"redis-node{i}", argv, port))
        ports.append(port)
    create = await asyncio.create_subprocess_exec(
        cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
        "--cluster-replicas", "1", "--cluster-yes",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out = (await create.communicate())[0].decode(errors="replace")
    if "All 16384 slots covered" not in out:
        raise RuntimeError(f"redis-cli --cluster create failed: {out[-300:]}")
    for _ in range(500):
        info = await asyncio.create_subprocess_exec(
            cli, "-p", str(ports[0]), "cluster", "info", stdout=asyncio.subprocess.PIPE)
        if b"cluster_state:ok" in (await info.communicate())[0]:
            return ports[0], pids
        await asyncio.sleep(0.02)  # polling the cluster's state: no event to await
    raise RuntimeError("the Redis Cluster did not reach cluster_state:ok")


async def start_roomcast_cluster(procs: ProcessGroup, opts: Options) -> ServerSet:
    seed, redis_pids = await start_redis_cluster(procs)
    env = {**roomcast_env(procs, opts, f"redis://127.0.0.1:{seed}"),
           "ROOMCAST_BROKER_MODE": "cluster"}
    (p1, pid1), (p2, pid2) = await asyncio.gather(
        _start_roomcast(procs, opts, "roomcast-a", env),
        _start_roomcast(procs, opts, "roomcast-b", env),
    )
    urls = [f"ws://127.0.0.1:{p}/websocket/connect" for p in (p1, p2)]
    servers = ServerSet("roomcast", urls, [pid1, pid2], aux_pids=redis_pids)
    await _trigger_for(p1, opts, servers)
    servers.notes.append("two instances + a 6-node Redis Cluster on the server CPU; "
                         "publishes on instance a")
    return servers


SCENARIOS: dict[str, Starter] = {
    "bare": start_bare,
    "bare-http": start_bare_http,
    "roomcast": start_roomcast,
    "roomcast-nohistory": start_roomcast_nohistory,
    "roomcast-redis": start_roomcast_redis,
    "roomcast-cluster": start_roomcast_cluster,
    "roomcast-deflate": start_roomcast_deflate,
    "socketio": start_socketio,
    "aiohttp-send": start_bare_send,
    "node-ws": start_node_ws,
    "node-socketio": start_node_socketio,
}

DESCRIPTIONS = {
    "bare": "aiohttp 3.14, frame built once, same bytes written to every transport",
    "bare-http": "the bare server with its messages POSTed (aiohttp's HTTP request on top)",
    "roomcast": "roomcast serve, one instance, in-memory broker (history on, the default)",
    "roomcast-nohistory": "the same with history off (ROOMCAST_HISTORY_*_SIZE=0)",
    "roomcast-deflate": "roomcast with ROOMCAST_PERMESSAGE_DEFLATE=on, every receiver offering it",
    "roomcast-redis": "roomcast serve x2 + redis-server, clients split, publishes on one",
    "roomcast-cluster": "roomcast serve x2 (cluster mode) + a Redis Cluster (3 masters, 3 "
                        "replicas), clients split, publishes on one",
    "socketio": "python-socketio AsyncServer emit(room=) on uvicorn (websockets-sansio)",
    "aiohttp-send": "aiohttp send_str per connection (for calibrating against other measurements)",
    "node-ws": "Node.js ws, frame built once (Sender.frame), the same buffers sent to every socket",
    "node-socketio": "Node.js Socket.IO, socket.to(room).emit() (one pre-built frame per emit)",
}
