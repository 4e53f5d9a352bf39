"""What one stored room publication costs Redis in each mode: one Redis, or a Cluster.

    python -m benchmarks.redis_modes [--appends 20000] [--rooms 200] [--concurrency 32]

For each of ``single`` (one ``redis-server``, the history script with PUBLISH),
``replica`` (the same with a replica attached) and ``cluster`` (three masters with a
replica each, SPUBLISH to the room's sharded channel),
it appends ``--appends`` publications to ``--rooms`` rooms through roomcast's own
history engine, ``--concurrency`` at a time from one process, while one subscriber per
mode (a broker subscribed to every room's channel) receives them. It reports:

- Redis CPU per append (user + system time of the redis processes, from /proc, over the
  run, divided by the appends): in total (replicas included), of the masters, and the
  busiest process's share;
- this client's CPU per append (the engine's routing included);
- appends per second as the client saw them (wall clock: noisy on a shared machine, and
  bounded by this one client process, not by Redis).

Redis CPU per append is the figure that says how many appends per second one Redis core
sustains; a Cluster spreads rooms over its masters, each with a core of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.common import free_port
from roomcast.broker.base import Target, ToRoom
from roomcast.broker.cluster import ClusterBroker
from roomcast.broker.redis import RedisBroker
from roomcast.history.base import Retention
from roomcast.history.redis import RedisHistory, redis_router
from roomcast.types import RoomId

_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _redis(directory: Path, *extra: str) -> tuple[subprocess.Popen[bytes], int]:
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server not found (apt-get install redis-server)")
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(directory), "--loglevel", "warning", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cli = shutil.which("redis-cli") or "redis-cli"
    for _ in range(500):
        done = subprocess.run([cli, "-p", str(port), "ping"], capture_output=True, text=True,
                              check=False)
        if done.stdout.strip() == "PONG":
            return proc, port
        time.sleep(0.02)  # polling a starting server: there is no event to await
    raise SystemExit(f"redis-server on {port} did not start")


def _cluster(directory: Path) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    procs, ports = [], []
    for i in range(6):
        proc, port = _redis(directory / f"node{i}", "--cluster-enabled", "yes",
                            "--cluster-config-file", "nodes.conf",
                            "--cluster-port", str(free_port()))
        procs.append(proc)
        ports.append(port)
    cli = shutil.which("redis-cli") or "redis-cli"
    out = subprocess.run([cli, "--cluster", "create",
                          *(f"127.0.0.1:{p}" for p in ports),
                          "--cluster-replicas", "1", "--cluster-yes"],
                         capture_output=True, text=True, check=False).stdout
    if "All 16384 slots covered" not in out:
        raise SystemExit(f"cluster create failed: {out[-300:]}")
    for _ in range(500):
        info = subprocess.run([cli, "-p", str(ports[0]), "cluster", "info"],
                              capture_output=True, text=True, check=False).stdout
        if "cluster_state:ok" in info:
            break
        time.sleep(0.02)  # polling the cluster's state: there is no event to await
    return procs, ports


class _Counter:
    def __init__(self) -> None:
        self.received = 0
        self.done = asyncio.Event()
        self.expected = 0

    def handle_publication(self, target: Target, payload: bytes) -> int:
        self.received += 1
        if self.received >= self.expected:
            self.done.set()
        return 0

    async def handle_control(self, command: object) -> None:
        return None


async def _run(url: str, cluster: bool, pids: list[int], args: argparse.Namespace
               ) -> dict[str, float]:
    retention = Retention(size=1000, ttl=3600.0, meta_ttl=86400.0)
    engine = RedisHistory(url, cluster=cluster)
    subscriber: RedisBroker = ClusterBroker(url, "subscriber") if cluster \
        else RedisBroker(url, "subscriber", mode="sharded")
    counter = _Counter()
    counter.expected = args.appends
    await subscriber.start(counter)
    rooms = [RoomId(f"group:bench{i}") for i in range(args.rooms)]
    for room in rooms:
        await subscriber.subscribe_room(room)
    route = redis_router(str(uuid.uuid4()), sharded=True, cluster=cluster)

    payloads = {room: route(ToRoom(room), b'{"type":"message","room":"%s","data":{"x":"%s"}}'
                            % (room.encode(), b"y" * 100)) for room in rooms}
    cpu_before = [_cpu_seconds(pid) for pid in pids]
    client_before = time.process_time()
    started = time.perf_counter()
    sent = 0

    async def worker() -> None:
        nonlocal sent
        while sent < args.appends:
            room = rooms[sent % len(rooms)]
            sent += 1
            path, envelope = payloads[room]
            await engine.append(room, envelope, retention, message_id=uuid.uuid4().hex,
                                route=path)

    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    await asyncio.wait_for(counter.done.wait(), 60)
    elapsed = time.perf_counter() - started
    client = time.process_time() - client_before
    cpu = [_cpu_seconds(pid) - before for pid, before in zip(pids, cpu_before, strict=True)]
    await subscriber.close()
    await engine.close()
    masters = sorted(cpu, reverse=True)[:max(1, len(cpu) // 2)]  # replicas work less
    return {"appends_per_s": args.appends / elapsed,
            "client_cpu_us": 1e6 * client / args.appends,
            "redis_cpu_us_total": 1e6 * sum(cpu) / args.appends,
            "redis_cpu_us_masters": 1e6 * sum(masters) / args.appends,
            "redis_cpu_us_busiest": 1e6 * max(cpu) / args.appends,
            "received": counter.received}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--appends", type=int, default=20000)
    parser.add_argument("--rooms", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="roomcast-redis-modes-") as tmp:
        proc, port = _redis(Path(tmp) / "single")
        try:
            single = asyncio.run(_run(f"redis://127.0.0.1:{port}/0", False, [proc.pid], args))
            replica, _ = _redis(Path(tmp) / "replica", "--replicaof", "127.0.0.1", str(port))
            try:
                replicated = asyncio.run(_run(f"redis://127.0.0.1:{port}/0", False,
                                              [proc.pid, replica.pid], args))
            finally:
                replica.terminate()
                replica.wait()
        finally:
            proc.terminate()
            proc.wait()
        procs, ports = _cluster(Path(tmp) / "cluster")
        try:
            cluster = asyncio.run(_run(f"redis://127.0.0.1:{ports[0]}", True,
                                       [p.pid for p in procs], args))
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait()
    print(f"{args.appends} appends to {args.rooms} rooms, {args.concurrency} at a time")
    print("CPU in us per append; 'busiest' is the busiest redis process's share")
    print("mode     appends/s  client  redis: all  masters  busiest")
    for name, row in (("single", single), ("replica", replicated), ("cluster", cluster)):
        print(f"{name:8} {row['appends_per_s']:9.0f}  {row['client_cpu_us']:6.1f}"
              f"  {row['redis_cpu_us_total']:10.1f}  {row['redis_cpu_us_masters']:7.1f}"
              f"  {row['redis_cpu_us_busiest']:7.1f}")


if __name__ == "__main__":
    main()
