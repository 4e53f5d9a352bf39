"""``python -m benchmarks.instructions``: user-space instructions per delivery, one at a time.

Wall-clock figures on a shared 2-core machine move with everyone else's load; the
number of instructions a server executes for the same work does not. Each scenario's
server runs under ``valgrind --tool=callgrind`` with instrumentation off; N clients
connect, a few messages warm the path up, then instrumentation is switched on for
an idle window (the server's background work per second) and for ``--count``
messages published one at a time (each once the previous one reached all N
clients). Both windows are dumped and read back; the table gives instructions per
delivery as measured and with the idle rate of the same duration subtracted.
roomcast's liveness pings and presence refresh are moved out of the run (an hour's
interval): they are a cost per connection and interval, not per delivery.

Callgrind counts user-space instructions only: the kernel's work (the system calls
and the loopback) is not in the figure, so two servers that make the same system
calls per delivery compare by it exactly. See ``docs/topics/benchmark.md``.

    python -m benchmarks.instructions [--scenarios bare,roomcast] [--n 1000] [--count 20]

``--native`` runs the same sequence without valgrind and reports server CPU time per
delivery and its user-space share instead (wall-clock dependent: indicative on a
busy machine). With ``--phase connect`` it splits a connection's CPU into user and
system time and counts the servers' write system calls per connection; where the stack
has a redis-server, also its CPU and its commands (``INFO commandstats``) per connection.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from benchmarks.common import GENERATOR_CPU, cpu_seconds, pin_to, raise_nofile
from benchmarks.procs import GeneratorProc, ProcessGroup, tail
from benchmarks.scenarios import SCENARIOS, Options, start_generator

_TOTAL = re.compile(rb"^(?:summary|totals):\s*(\d+)", re.MULTILINE)


async def control(pid: int, *args: str) -> None:
    """``callgrind_control`` on one server process (it waits for the answer)."""
    proc = await asyncio.create_subprocess_exec(
        "callgrind_control",
        *args,
        str(pid),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    if proc.returncode != 0 or b"OK" not in out:
        raise RuntimeError(f"callgrind_control {' '.join(args)} {pid}: {out.decode()[-300:]}")


def instructions(out_dir: Path, pid: int, part: int) -> int:
    """Total instructions of dump ``part`` of ``pid`` (callgrind's ``summary`` line)."""
    data = (out_dir / f"cg.{pid}.out.{part}").read_bytes()
    match = _TOTAL.search(data)
    if match is None:
        raise RuntimeError(f"no instruction total in dump {part} of {pid}")
    return int(match.group(1))


async def dump_all(pids: list[int]) -> None:
    await asyncio.gather(*(control(pid, "--dump") for pid in pids))


async def one(scenario: str, args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    """Connect, warm up, then count an idle window and ``count`` sequential messages."""
    out_dir.mkdir()  # noqa: ASYNC240 - creating a directory is instant
    wrap = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
    wrap += [f"--callgrind-out-file={out_dir}/cg.%p.out"]
    if args.native:
        wrap = []
    opts = Options(
        trigger=args.trigger if scenario.startswith("roomcast") else "auto",
        # Periodic work (roomcast's liveness pings to every connection, and the presence
        # refresh, a pass over every connection each TTL/3) is not a cost per delivery
        # and lands in one window but not the other: subtracting its average rate left
        # +-200 instructions per delivery of noise at N=1,000.
        roomcast_env={"ROOMCAST_PING_INTERVAL": "3600", "ROOMCAST_PING_TIMEOUT": "7200",
                      "ROOMCAST_INSTANCE_TTL": "3600"},
        wrap=wrap,
        start_timeout_s=300.0,
    )
    procs = ProcessGroup(out_dir)
    record: dict[str, Any] = {"scenario": scenario, "n": args.n, "count": args.count}
    try:
        servers = await SCENARIOS[scenario](procs, opts)
        gen = await start_generator(
            procs,
            servers,
            args.n,
            out_dir,
            connect_concurrency=100 if args.native else 20,  # 100: as benchmarks.run
            handshake_timeout_s=120.0,
            stall_s=60.0,
            join_deadline_s=600.0,
        )
        await gen.call({"cmd": "warmup"}, 600)
        if args.phase == "connect" and not args.native:
            for pid in servers.pids:
                await control(pid, "--instr=on")
        cpu_before = sum(cpu_seconds(pid) for pid in servers.pids)
        meter = ConnectMeter(servers.pids, servers.aux_pids, servers.redis_port)
        if args.phase == "connect" and args.native:
            await meter.start()
        connect = await gen.call({"cmd": "connect"}, 1200)
        record["connected"] = connect["joined"]
        if connect["joined"] != args.n:
            raise RuntimeError(f"only {connect['joined']} of {args.n} clients joined")
        await gen.call({"cmd": "settle", "deadline_s": 120}, 180)
        if args.phase == "connect" and args.native:
            cpu = sum(cpu_seconds(pid) for pid in servers.pids) - cpu_before
            record.update(connect_s=connect["connect_s"], us_per_connect=1e6 * cpu / args.n)
            record.update(await meter.per_connection(args.n))
            await gen.call({"cmd": "quit"}, 30)
            return record
        if args.phase == "connect" and not args.native:
            await dump_all(servers.pids)
            connect_ir = sum(instructions(out_dir, pid, 1) for pid in servers.pids)
            record.update(connect_ir=connect_ir, ir_per_connect=connect_ir / args.n)
            await gen.call({"cmd": "quit"}, 30)
            return record
        # First messages run lazy imports and first allocations: not what is measured.
        await gen.call({"cmd": "sequential", "count": args.warm}, 1200)
        await gen.call({"cmd": "settle", "deadline_s": 120}, 180)
        pids = servers.pids
        if args.native:
            record.update(await native(gen, pids, args.count, out_dir if args.strace else None))
            await gen.call({"cmd": "quit"}, 30)
            return record
        for pid in pids:
            await control(pid, "--instr=on")
        t0 = time.perf_counter()
        await asyncio.sleep(args.idle)
        await dump_all(pids)
        idle_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        seq = await gen.call({"cmd": "sequential", "count": args.count}, 3600)
        await dump_all(pids)
        busy_s = time.perf_counter() - t1
        for pid in pids:
            await control(pid, "--instr=off")
        idle_ir = sum(instructions(out_dir, pid, 1) for pid in pids)
        busy_ir = sum(instructions(out_dir, pid, 2) for pid in pids)
        delivered = int(seq["delivered"])
        background = idle_ir / idle_s * busy_s
        record.update(
            delivered=delivered,
            complete=seq["complete"],
            idle_s=idle_s,
            idle_ir=idle_ir,
            busy_s=busy_s,
            busy_ir=busy_ir,
            ir_per_delivery=busy_ir / delivered if delivered else float("nan"),
            ir_per_delivery_net=(busy_ir - background) / delivered if delivered else float("nan"),
        )
        await gen.call({"cmd": "quit"}, 30)
    except Exception as exc:  # one failed scenario must not stop the rest
        record["error"] = f"{type(exc).__name__}: {exc}"
        record["logs"] = {log.name: tail(log, 8) for _, _, log in procs.children}
    finally:
        await procs.close()
    return record


class ConnectMeter:
    """What the servers (and a redis-server) spent on a connect storm, per connection."""

    def __init__(self, pids: list[int], aux_pids: list[int], redis_port: int | None) -> None:
        self.procs = [psutil.Process(pid) for pid in pids]
        self.aux = [psutil.Process(pid) for pid in aux_pids]
        self.redis_port = redis_port
        self._before: tuple[float, float, int, float] = (0.0, 0.0, 0, 0.0)

    def _sample(self) -> tuple[float, float, int, float]:
        times = [p.cpu_times() for p in self.procs]
        writes = sum(p.io_counters().write_count for p in self.procs)
        aux = sum(t.user + t.system for t in (p.cpu_times() for p in self.aux))
        return sum(t.user for t in times), sum(t.system for t in times), writes, aux

    async def _redis(self, *command: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            "redis-cli", "-p", str(self.redis_port), *command,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        return out.decode(errors="replace")

    async def start(self) -> None:
        if self.redis_port is not None:
            await self._redis("config", "resetstat")
        self._before = self._sample()

    async def per_connection(self, n: int) -> dict[str, Any]:
        after = self._sample()
        user, system, writes, aux = (b - a for a, b in zip(self._before, after, strict=True))
        out: dict[str, Any] = {"user_us": 1e6 * user / n, "sys_us": 1e6 * system / n,
                               "writes_per_connect": writes / n}
        if self.redis_port is not None:
            calls = commandstats(await self._redis("info", "commandstats"))
            calls.pop("config|resetstat", None)
            out["redis_us"] = 1e6 * aux / n
            out["redis_commands"] = {k: round(v / n, 2) for k, v in
                                     sorted(calls.items(), key=lambda kv: -kv[1])}
        return out


_CMDSTAT = re.compile(r"^cmdstat_(\S+?):calls=(\d+)", re.MULTILINE)


def commandstats(info: str) -> dict[str, int]:
    """Calls per command from ``INFO commandstats`` (commands run by scripts included)."""
    return {m.group(1): int(m.group(2)) for m in _CMDSTAT.finditer(info)}


async def native(
    gen: GeneratorProc, pids: list[int], count: int, strace_dir: Path | None
) -> dict[str, Any]:
    """CPU time (user and system) per delivery of the same sequence, without valgrind.

    With ``strace_dir``, ``strace -c`` is attached for the sequence: system calls per
    delivery (strace slows them down, so the CPU figures of such a run mean little).
    """
    procs = [psutil.Process(pid) for pid in pids]
    tracers = []
    for pid in pids if strace_dir is not None else []:
        out = f"{strace_dir}/strace.{pid}.txt"
        tracers.append(
            await asyncio.create_subprocess_exec("strace", "-c", "-f", "-o", out, "-p", str(pid))
        )
    if tracers:
        await asyncio.sleep(2.0)  # attached before the sequence starts

    def sample() -> tuple[float, float, float]:
        times = [p.cpu_times() for p in procs]
        total = sum(cpu_seconds(pid) for pid in pids)
        return total, sum(t.user for t in times), sum(t.system for t in times)

    a = sample()
    seq = await gen.call({"cmd": "sequential", "count": count}, 3600)
    b = sample()
    delivered = int(seq["delivered"]) or 1
    calls: dict[str, int] = {}
    for tracer in tracers:
        tracer.send_signal(signal.SIGINT)
        await tracer.wait()
    if strace_dir is not None:
        for pid in pids:
            calls.update(strace_counts(strace_dir / f"strace.{pid}.txt"))
    return {
        "syscalls_per_delivery": {k: round(v / delivered, 3) for k, v in calls.items()},
        "delivered": int(seq["delivered"]),
        "complete": seq["complete"],
        "us_per_delivery": 1e6 * (b[0] - a[0]) / delivered,
        "user_share": (b[1] - a[1]) / max(b[1] - a[1] + b[2] - a[2], 1e-9),
    }


def strace_counts(path: Path) -> dict[str, int]:
    """System call counts from an ``strace -c`` summary."""
    counts: dict[str, int] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[3].isdigit() and not parts[-1].startswith("total"):
            counts[parts[-1]] = counts.get(parts[-1], 0) + int(parts[3])
    return counts


def native_table(records: list[dict[str, Any]]) -> list[str]:
    bare = next((r for r in records if r["scenario"] == "bare" and "error" not in r), None)
    lines = [
        "| stack | N | messages | delivered | server us/delivery | user share | x bare |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in records:
        if "error" in r:
            lines.append(f"| {r['scenario']} | {r['n']} | {r['count']} | error: {r['error']} |")
            continue
        ratio = f"{r['us_per_delivery'] / bare['us_per_delivery']:.3f}" if bare else "-"
        lines.append(
            f"| {r['scenario']} | {r['n']} | {r['count']} | {r['delivered']:,} "
            f"| {r['us_per_delivery']:.2f} | {100 * r['user_share']:.0f}% | {ratio} |"
        )
    return lines


def connect_table(records: list[dict[str, Any]], *, native: bool) -> list[str]:
    """Per connection: user-space instructions, or (``native``) the servers' CPU time."""
    key = "us_per_connect" if native else "ir_per_connect"
    head = "connect s | server us/connection" if native else "instructions | per connection"
    more = " user us | system us | writes | redis-server us | redis commands |" if native else ""
    bare = next((r for r in records if r["scenario"] == "bare" and "error" not in r), None)
    lines = [f"| stack | N | {head} | x bare |{more}",
             "|---|---|---|---|---|" + "---|" * more.count("|")]
    for r in records:
        if "error" in r:
            lines.append(f"| {r['scenario']} | {r['n']} | error: {r['error']} |")
            continue
        ratio = f"{r[key] / bare[key]:.2f}" if bare else "-"
        total = f"{r['connect_s']:.2f}" if native else f"{r['connect_ir']:,}"
        line = f"| {r['scenario']} | {r['n']} | {total} | {r[key]:,.0f} | {ratio} |"
        if native:
            redis = r.get("redis_commands")
            tail = "- | - |" if redis is None else \
                f"{r['redis_us']:,.0f} | {sum(redis.values()):.1f} |"
            line += (f" {r['user_us']:,.0f} | {r['sys_us']:,.0f} |"
                     f" {r['writes_per_connect']:.1f} | {tail}")
        lines.append(line)
    return lines


def table(records: list[dict[str, Any]]) -> list[str]:
    bare = next((r for r in records if r["scenario"] == "bare" and "error" not in r), None)
    lines = [
        "| stack | N | messages | delivered | instructions | per delivery | idle /s "
        "| per delivery, idle subtracted | x bare |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        if "error" in r:
            lines.append(f"| {r['scenario']} | {r['n']} | {r['count']} | error: {r['error']} |")
            continue
        ratio = (
            f"{r['ir_per_delivery_net'] / bare['ir_per_delivery_net']:.3f}" if bare else "-"
        )
        lines.append(
            f"| {r['scenario']} | {r['n']} | {r['count']} | {r['delivered']:,} "
            f"| {r['busy_ir']:,} | {r['ir_per_delivery']:,.0f} "
            f"| {r['idle_ir'] / r['idle_s']:,.0f} | {r['ir_per_delivery_net']:,.0f} | {ratio} |"
        )
    return lines


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    pin_to(GENERATOR_CPU)
    raise_nofile()
    records = []
    with tempfile.TemporaryDirectory(prefix="roomcast-instr-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
        for i, scenario in enumerate(scenarios):
            rec = await one(scenario, args, work / f"{i}-{scenario}")
            print(json.dumps(rec, default=str), file=sys.stderr, flush=True)
            records.append(rec)
    return records


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.instructions", description=__doc__)
    p.add_argument("--scenarios", default="bare,roomcast")
    p.add_argument("--n", type=int, default=1000, help="connections in the room")
    p.add_argument("--count", type=int, default=20, help="messages counted, one at a time")
    p.add_argument("--warm", type=int, default=3, help="messages before counting")
    p.add_argument("--idle", type=float, default=5.0, help="s of the idle window")
    p.add_argument("--trigger", choices=("http", "ws"), default="http",
                   help="how roomcast's messages are published: the HTTP API, or a member "
                   "WebSocket like the bare server's")
    p.add_argument("--phase", choices=("delivery", "connect"), default="delivery",
                   help="connect: instructions per connection of the connect storm (from "
                   "the first handshake until every client joined and the server settled)")
    p.add_argument("--json", default="", help="also write the records here")
    p.add_argument(
        "--native",
        action="store_true",
        help="no valgrind: server CPU time per delivery (and its user share) instead",
    )
    p.add_argument("--strace", action="store_true", help="--native: system calls per delivery")
    p.add_argument("--keep", default="", help="keep the callgrind dumps in this new directory")
    args = p.parse_args(argv)
    tools = ("valgrind", "callgrind_control")
    if not args.native and not all(shutil.which(tool) for tool in tools):
        print("valgrind (with callgrind_control) is needed: apt-get install valgrind")
        return 2
    records = asyncio.run(main_async(args))
    if args.phase == "connect":
        print("\n".join(connect_table(records, native=args.native)))
    else:
        print("\n".join(native_table(records) if args.native else table(records)))
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1, default=str))
    return 0 if all("error" not in r for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
