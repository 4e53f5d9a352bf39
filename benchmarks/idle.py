"""``python -m benchmarks.idle``: what N connections cost a server that sends nothing.

N generator clients connect and then stay silent (they answer WebSocket pings, as
any client library does, and send nothing else). Over ``--window`` seconds the
server's CPU time is read (every thread, from ``/proc``), or with ``--callgrind``
its user-space instructions (load-independent). roomcast's background work then
shows: pings every ``ROOMCAST_PING_INTERVAL`` to the connections that said nothing
meanwhile (all of them here) and their pongs, the presence sweep, stats. Make the
window a multiple of the ping interval (30 s by default), or set the interval for
the run (an environment variable reaches the servers).

    python -m benchmarks.idle [--scenarios bare,roomcast] [--n 10000] [--window 60]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import GENERATOR_CPU, cpu_seconds, pin_to, raise_nofile
from benchmarks.instructions import control, dump_all, instructions
from benchmarks.procs import ProcessGroup
from benchmarks.scenarios import SCENARIOS, Options, start_generator

#: Seconds between the last join and the window: the connect storm's echoes settle.
_SETTLE = 3.0


async def one(scenario: str, args: argparse.Namespace, out_dir: Path) -> str:
    """Connect N clients, wait, measure the window; one table row."""
    out_dir.mkdir()  # noqa: ASYNC240 - creating a directory is instant
    wrap = []
    if args.callgrind:
        wrap = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                f"--callgrind-out-file={out_dir}/cg.%p.out"]
    procs = ProcessGroup(out_dir)
    try:
        servers = await SCENARIOS[scenario](procs, Options(wrap=wrap, start_timeout_s=300.0))
        gen = await start_generator(procs, servers, args.n, out_dir,
                                    connect_concurrency=20 if args.callgrind else 100,
                                    handshake_timeout_s=120.0, stall_s=60.0,
                                    join_deadline_s=600.0)
        await gen.call({"cmd": "warmup"}, 600)
        connect = await gen.call({"cmd": "connect"}, 1200)
        if connect["joined"] != args.n:
            return f"| {scenario} | {args.n} | only {connect['joined']} joined | |"
        await gen.call({"cmd": "settle", "deadline_s": 120}, 180)
        await asyncio.sleep(_SETTLE)
        pids = servers.pids
        if args.callgrind:
            for pid in pids:
                await control(pid, "--instr=on")
        before = sum(cpu_seconds(pid) for pid in pids)
        started = time.perf_counter()
        await asyncio.sleep(args.window)
        if args.callgrind:
            await dump_all(pids)
        window = time.perf_counter() - started
        used = sum(cpu_seconds(pid) for pid in pids) - before
        await gen.call({"cmd": "quit"}, 30)
        if args.callgrind:
            per_s = sum(instructions(out_dir, pid, 1) for pid in pids) / window
            return f"| {scenario} | {args.n} | {window:.0f} | {per_s:,.0f} instructions/s |"
        return (f"| {scenario} | {args.n} | {window:.0f} | {1e3 * used / window:.1f} ms/s "
                f"({100 * used / window:.2f}% of a core) |")
    finally:
        await procs.close()


async def main_async(args: argparse.Namespace) -> list[str]:
    pin_to(GENERATOR_CPU)
    raise_nofile()
    rows = ["| stack | N | window s | server CPU while idle |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="roomcast-idle-") as tmp:
        for i, scenario in enumerate(s.strip() for s in args.scenarios.split(",")):
            rows.append(await one(scenario, args, Path(tmp) / f"{i}-{scenario}"))
            print(rows[-1], file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.idle", description=__doc__)
    p.add_argument("--scenarios", default="bare,roomcast")
    p.add_argument("--n", type=int, default=10000, help="idle connections")
    p.add_argument("--window", type=float, default=60.0, help="seconds measured")
    p.add_argument("--callgrind", action="store_true",
                   help="user-space instructions per second (valgrind) instead of CPU time")
    args = p.parse_args(argv)
    print("\n".join(asyncio.run(main_async(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
