"""``python -m benchmarks.soak``: hold N connections under churn and traffic; watch memory.

One ``roomcast serve`` (history on, in-memory broker) pinned to the server CPU; this
process, pinned to the generator CPU, holds N picows connections, replaces ``--churn``
of them every minute (spread evenly) and publishes at fixed rates through the API
(``benchmarks/soakload.py``). Every ``--interval`` seconds it samples the server's
VmRSS, open descriptors, CPU and connection count, and the latency of what arrived
since the previous sample. At the end it closes everything and checks that the
server's descriptors went back to where they started. Not a test: a benchmark mode,
see ``docs/topics/benchmark.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

from benchmarks import soakgrowth
from benchmarks.common import GENERATOR_CPU, cpu_seconds, percentile, pin_to, raise_nofile
from benchmarks.noise import ForeignMeter
from benchmarks.procs import ProcessGroup, tail
from benchmarks.report import machine_info
from benchmarks.scenarios import API_KEY, JWT_SECRET, Options, start_roomcast
from benchmarks.soakload import LoadConfig, SoakLoad
from benchmarks.soakreport import write_outputs

HERE = Path(__file__).resolve().parent


def vm_rss(pid: int) -> int:
    """VmRSS of ``pid`` in bytes."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def server_status(base: str) -> dict[str, Any]:
    """``/websocket/status`` stats (a one-off connection, closed before returning)."""
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                base + "/websocket/status",
                headers={"X-API-Key": API_KEY},
                timeout=aiohttp.ClientTimeout(total=10),
            ) as resp,
        ):
            body = await resp.json()
            stats: dict[str, Any] = body.get("stats", {})
            return stats
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return {}


class Sampler:
    """Server and load figures every interval; the minute's latencies kept for the table."""

    def __init__(self, pid: int, base: str, load: SoakLoad) -> None:
        self.pid = pid
        self.base = base
        self.load = load
        self.rows: list[dict[str, Any]] = []
        self.minutes: list[dict[str, Any]] = []
        self.minute_lat: list[int] = []
        self.t0 = time.monotonic()
        self.cpu0 = cpu_seconds(pid)
        self.wall0 = self.t0
        self.foreign = ForeignMeter()
        self.foreign.start()

    async def sample(self) -> dict[str, Any]:
        now = time.monotonic()
        cpu = cpu_seconds(self.pid)
        status = await server_status(self.base)
        load = self.load.sample()
        lat = load.pop("lat_ns")
        row: dict[str, Any] = {
            "t_s": round(now - self.t0, 1),
            "rss_mib": vm_rss(self.pid) / 2**20,
            "fds": open_fds(self.pid),
            "server_conns": status.get("active_connections", -1),
            "server_rooms": status.get("total_rooms", -1),
            "server_cpu_pct": 100 * (cpu - self.cpu0) / max(now - self.wall0, 1e-9),
            "other_cpu_pct": 100 * self.foreign.stop(),
            "load1": os.getloadavg()[0],
            **load,
        }
        self.foreign.start()
        self.cpu0, self.wall0 = cpu, now
        self.rows.append(row)
        self.minute_lat.extend(lat)
        return row

    def close_minute(self, minute: int) -> None:
        lat = sorted(self.minute_lat)
        self.minute_lat = []
        last = self.rows[-1]
        self.minutes.append(
            {
                "minute": minute,
                "deliveries": len(lat),
                "p50_ms": percentile(lat, 0.50) / 1e6,
                "p99_ms": percentile(lat, 0.99) / 1e6,
                "max_ms": lat[-1] / 1e6 if lat else math.nan,
                **{k: last[k] for k in ("rss_mib", "fds", "server_conns", "server_rooms", "live")},
                **{k: last[k] for k in ("closed", "opened", "connect_failures", "load1")},
                "errors": errors(last),
            }
        )


def errors(row: dict[str, Any]) -> int:
    """Faults so far: failed connects, closes we did not ask for, error frames, API errors."""
    keys = ("connect_failures", "unexpected_closes", "ws_errors", "post_errors")
    return sum(int(row[k]) for k in keys)


def progress(row: dict[str, Any]) -> None:
    print(
        f"[soak] {row['t_s'] / 60:5.1f} min  rss {row['rss_mib']:7.1f} MiB  fds {row['fds']:6d}"
        f"  conns {row['server_conns']:6d}  p99 {row['p99_ms']:7.1f} ms"
        f"  churned {row['closed']:6d}  errors {errors(row)}  load {row['load1']:.2f}",
        file=sys.stderr,
        flush=True,
    )


def parse_env(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = value
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    pin_to(GENERATOR_CPU)
    nofile = raise_nofile()
    record: dict[str, Any] = {
        "args": {k: v for k, v in vars(args).items() if k != "out"},
        "command": "python -m benchmarks.soak " + " ".join(sys.argv[1:]),
        "machine": machine_info(),
        "nofile": list(nofile),
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    traced: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="roomcast-soak-") as tmp:
        procs = ProcessGroup(Path(tmp))
        try:
            trace_dir = Path(tmp) / "trace"
            env = parse_env(args.server_env)
            if args.trace:
                trace_dir.mkdir()
                env.update(soakgrowth.server_env(trace_dir))
            opts = Options(trigger="http", roomcast_env=env, start_timeout_s=120)
            servers = await start_roomcast(procs, opts)
            pid = servers.pids[0]
            ws_url = servers.urls[0]
            base = "http://" + ws_url.removeprefix("ws://").split("/", 1)[0]
            await server_status(base)  # one request through, so the baseline is warm
            await asyncio.sleep(1)
            record["baseline"] = {"rss_mib": vm_rss(pid) / 2**20, "fds": open_fds(pid)}
            cfg = LoadConfig(
                ws_url=ws_url,
                http_base=base,
                api_key=API_KEY,
                jwt_secret=JWT_SECRET,
                n=args.n,
                churn_per_min=args.churn,
                new_user_share=args.new_users,
                corps=args.corps,
                alliances=args.alliances,
                user_rate=args.user_rate,
                corp_rate=args.corp_rate,
                alliance_rate=args.alliance_rate,
            )
            load = SoakLoad(cfg)
            await load.start()
            record["connect_s"] = await load.connect_all()
            print(f"[soak] {load.live()} connected in {record['connect_s']:.1f} s", file=sys.stderr)
            sampler = Sampler(pid, base, load)
            record["samples"] = sampler.rows
            record["minutes"] = sampler.minutes
            load.run()
            end = sampler.t0 + args.minutes * 60
            k = 0
            while True:
                k += 1
                wake = sampler.t0 + k * args.interval
                if wake > end + 0.5:
                    break
                await asyncio.sleep(max(0.0, wake - time.monotonic()))
                progress(await sampler.sample())
                minute, rest = divmod(round(k * args.interval), 60)
                if rest == 0:
                    sampler.close_minute(minute)
                    if args.trace and minute == round(args.warmup):
                        traced.append(await soakgrowth.snapshot(pid, trace_dir, len(traced) + 1))
            if args.trace:
                traced.append(await soakgrowth.snapshot(pid, trace_dir, len(traced) + 1))
            await load.stop_traffic()
            record["error_samples"] = load.samples_of_errors()
            await load.close_all()
            if len(traced) == 2:
                record["growth"] = soakgrowth.growth(traced[0], traced[1])
            record["after_close"] = await after_close(pid, base, record["baseline"]["fds"])
        except Exception as exc:
            record["error"] = f"{type(exc).__name__}: {exc}"
            record["server_log"] = "\n".join(tail(log, 20) for _, _, log in procs.children)
            if not record.get("samples"):
                raise
        finally:
            await procs.close()
    record["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    return record


async def after_close(pid: int, base: str, fds0: int) -> dict[str, Any]:
    """Wait (at most a minute) until the server has no connection and its fds are back."""
    t0 = time.monotonic()
    status: dict[str, Any] = {}
    while time.monotonic() - t0 < 60:
        status = await server_status(base)
        if status.get("active_connections", 1) == 0 and open_fds(pid) <= fds0:
            break
        await asyncio.sleep(1)
    with contextlib.suppress(OSError):
        await asyncio.sleep(2)
    return {
        "wait_s": round(time.monotonic() - t0, 1),
        "server_conns": status.get("active_connections", -1),
        "server_rooms": status.get("total_rooms", -1),
        "fds": open_fds(pid),
        "rss_mib": vm_rss(pid) / 2**20,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    p.add_argument("--minutes", type=float, default=30.0, help="length after the connect storm")
    p.add_argument("--n", type=int, default=10_000, help="connections held")
    p.add_argument("--churn", type=float, default=0.10, help="share replaced per minute")
    p.add_argument(
        "--new-users", type=float, default=0.5, help="share of replacements by new users"
    )
    p.add_argument("--warmup", type=float, default=5.0, help="minutes before the RSS reference")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    p.add_argument("--corps", type=int, default=200, help="small group rooms (c<k>)")
    p.add_argument("--alliances", type=int, default=20, help="large group rooms (a<k>)")
    p.add_argument("--user-rate", type=float, default=20.0, help="messages/s to single users")
    p.add_argument("--corp-rate", type=float, default=2.0, help="messages/s to small groups")
    p.add_argument("--alliance-rate", type=float, default=0.2, help="messages/s to large groups")
    p.add_argument("--tolerance", type=float, default=0.05, help="allowed RSS change after warm-up")
    p.add_argument(
        "--server-env", action="append", default=[], metavar="K=V", help="extra server settings"
    )
    p.add_argument("--out", type=Path, default=HERE, help="directory of the result files")
    p.add_argument("--name", default=None,
                   help="stem of the result files (default: soak, or soak-trace with --trace)")
    p.add_argument(
        "--no-results-md", action="store_true", help="do not update the Soak section of RESULTS.md"
    )
    p.add_argument(
        "--trace", action="store_true",
        help="diagnostic: trace the server's allocations and report what grew after warm-up "
        "(tracing slows and bloats the server: its figures are not the product's; implies "
        "--no-results-md)",
    )
    args = p.parse_args(argv)
    args.no_results_md = args.no_results_md or args.trace
    # A traced run's figures are not the product's: never in the measured soak's files.
    args.name = args.name or ("soak-trace" if args.trace else "soak")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    record = uvloop.run(run(args))
    verdict = write_outputs(record, args)
    if record.get("growth"):
        print("\n".join(soakgrowth.table(record["growth"])), file=sys.stderr)
    print(verdict, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
