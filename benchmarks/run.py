"""``python -m benchmarks.run``: fan-out benchmark of roomcast, the bare limit and socket.io.

Each scenario's server(s) run as separate processes pinned to CPU 0, the picows load
generator (and this runner) to CPU 1; RLIMIT_NOFILE is raised to 65536 first (every
child inherits it). For every scenario and N: connect N authenticated clients into
one room, publish M messages at full speed, then a paced run at 5 messages/s.
Writes ``benchmarks/RESULTS.md`` and ``benchmarks/results.json``. See
``docs/topics/benchmark.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import GENERATOR_CPU, median, pin_to, raise_nofile
from benchmarks.noise import ForeignMeter, wait_quiet
from benchmarks.procs import GeneratorProc, ProcessGroup, rss, set_nice, tail
from benchmarks.report import machine_info, write_report
from benchmarks.scenarios import DESCRIPTIONS, SCENARIOS, Options, ServerSet, start_generator

HERE = Path(__file__).resolve().parent
DEFAULT_SCENARIOS = (
    "bare",
    "roomcast",
    "roomcast-deflate",
    "roomcast-redis",
    "socketio",
    "node-ws",
    "node-socketio",
)
#: M per N; python-socketio gets a smaller M so a run stays short.
DEFAULT_M = {1000: 200, 5000: 200, 10000: 100}
SOCKETIO_M = {1000: 200, 5000: 40, 10000: 20}


def m_for(scenario: str, n: int, override: int | None) -> int:
    if override is not None:
        return override
    table = SOCKETIO_M if scenario == "socketio" else DEFAULT_M
    if n in table:
        return table[n]
    return 200 if n <= 5000 else 100


async def one_run(
    scenario: str,
    n: int,
    m: int,
    args: argparse.Namespace,
    opts: Options,
    log_dir: Path,
    profile_dir: Path | None = None,
) -> dict[str, Any]:
    """Start the scenario, measure one connect + burst + paced run, stop everything."""
    procs = ProcessGroup(log_dir)
    record: dict[str, Any] = {"scenario": scenario, "n": n, "m": m}
    try:
        servers: ServerSet = await SCENARIOS[scenario](procs, opts)
        record["trigger"] = servers.trigger
        record["notes"] = servers.notes
        gen = await start_generator(
            procs, servers, n, log_dir, connect_concurrency=args.connect_concurrency
        )
        await gen.call({"cmd": "warmup"}, 60)
        await gen.call({"cmd": "settle", "deadline_s": 10}, 30)
        rss_before = rss(servers.pids)
        meter = ForeignMeter()
        waits = record["quiet_waits"] = []
        waits.append(await quiet(args))
        meter.start()
        spies = await start_pyspies(
            procs, servers.pids, profile_dir, f"{scenario}-{n}-connect", args
        )
        connect = await gen.call({"cmd": "connect"}, 240 + n / 50)
        connect["foreign_pct"] = 100 * meter.stop()
        profiles = record["profiles"] = await stop_pyspies(spies, procs)
        record["connect"] = connect
        record["settle_connect"] = await gen.call({"cmd": "settle", "deadline_s": 60}, 90)
        rss_after = rss(servers.pids)
        record["rss_before"] = rss_before
        record["rss_after"] = rss_after
        joined = max(1, int(connect["connected"]))
        record["rss_per_conn_kib"] = (rss_after - rss_before) / 1024 / joined
        burst_timeout = 120 + n * m / 1000
        waits.append(await quiet(args))
        spies = await start_pyspies(procs, servers.pids, profile_dir, f"{scenario}-{n}-burst", args)
        meter.start()
        record["burst"] = await gen.call({"cmd": "burst", "m": m}, burst_timeout)
        record["burst"]["foreign_pct"] = 100 * meter.stop()
        profiles += await stop_pyspies(spies, procs)
        record["rss_after_burst"] = rss(servers.pids)
        record["settle_burst"] = await gen.call({"cmd": "settle", "deadline_s": 30}, 60)
        if args.paced > 0:
            waits.append(await quiet(args))
            meter.start()
            record["paced"] = await gen.call(
                {"cmd": "paced", "count": args.paced, "rate": args.rate},
                120 + n * args.paced / 1000,
            )
            record["paced"]["foreign_pct"] = 100 * meter.stop()
        if args.reconnect and servers.restart is not None:
            record["reconnect"] = await reconnect_storm(gen, servers, n, args, meter)
        await gen.call({"cmd": "quit"}, 10)
    except Exception as exc:  # one failed scenario must not stop the rest
        record["error"] = f"{type(exc).__name__}: {exc}"
        for _, proc, log in procs.children:
            record.setdefault("logs", {})[log.name] = tail(log, 8)
            _ = proc
    finally:
        await procs.close()
    return record


async def reconnect_storm(
    gen: GeneratorProc, servers: ServerSet, n: int, args: argparse.Namespace,
    meter: ForeignMeter,
) -> dict[str, Any]:
    """Restart the servers gracefully; time every client's reconnect with its positions."""
    await gen.call({"cmd": "settle", "deadline_s": 30}, 60)
    t0 = time.perf_counter()
    assert servers.restart is not None
    pids = await servers.restart()
    restart_s = time.perf_counter() - t0
    await quiet(args)
    meter.start()
    result = await gen.call({"cmd": "reconnect", "server_pids": pids}, 240 + n / 50)
    result["foreign_pct"] = 100 * meter.stop()
    result["restart_s"] = restart_s
    return result


async def quiet(args: argparse.Namespace) -> float:
    """Wait (bounded) until other processes leave the machine alone; seconds waited."""
    if args.quiet_wait <= 0:
        return 0.0
    ok, waited = await wait_quiet(args.max_noise / 100, deadline_s=args.quiet_wait)
    return round(waited, 1) if ok else -round(waited, 1)


def noise(rec: dict[str, Any]) -> float:
    """Largest foreign CPU share (% of a core) seen in the measured phases of a run."""
    values = [
        float(rec.get(phase, {}).get("foreign_pct", 0.0))
        for phase in ("connect", "burst", "paced", "reconnect")
    ]
    return max(values) if values else 0.0


async def start_pyspies(
    procs: ProcessGroup,
    pids: list[int],
    out_dir: Path | None,
    stem: str,
    args: argparse.Namespace,
) -> list[tuple[asyncio.subprocess.Process, Path]]:
    """py-spy on every server process (nothing when not profiling)."""
    if out_dir is None:
        return []
    spies = []
    for i, pid in enumerate(pids):
        out = out_dir / (f"{stem}.txt" if len(pids) == 1 else f"{stem}-{'ab'[i]}.txt")
        argv = ["py-spy", "record", "--pid", str(pid), "--rate", "250", "--format", "raw"]
        argv += ["--output", str(out), "--nonblocking"]
        if args.native:
            argv.append("--native")
        spies.append((await procs.spawn(f"py-spy-{out.stem}", argv, GENERATOR_CPU), out))
    await asyncio.sleep(1.5)  # let them attach before the phase starts
    return spies


async def stop_pyspies(
    spies: list[tuple[asyncio.subprocess.Process, Path]], procs: ProcessGroup
) -> list[str]:
    """SIGINT makes py-spy write its output; the paths written."""
    written = []
    for proc, out in spies:
        proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
        if out.exists():
            written.append(str(out))
    return written


def aggregate(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median per (scenario, N) over runs; min-max of deliveries/s."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for rec in records:
        groups.setdefault((rec["scenario"], rec["n"]), []).append(rec)
    rows = []
    for (scenario, n), recs in groups.items():
        ok = [r for r in recs if "error" not in r and "burst" in r]
        row: dict[str, Any] = {
            "scenario": scenario,
            "n": n,
            "m": recs[0]["m"],
            "runs": len(ok),
            "errors": [r["error"] for r in recs if "error" in r],
            "trigger": recs[0].get("trigger", ""),
            "notes": recs[0].get("notes", []),
        }
        if ok:
            row.update(_medians(ok))
        rows.append(row)
    for row in rows:
        row.update(_paired(groups, row["scenario"], row["n"]))
        if row["scenario"].startswith("roomcast"):
            row.update(_paired(groups, row["scenario"], row["n"], base="bare-http"))
    return rows


#: Per-run figures compared run by run with the bare server's run of the same index.
PAIRED_FIELDS = {
    "paced_us": ("paced", "server_us_per_delivery"),
    "us": ("burst", "server_us_per_delivery"),
    "connect_s": ("connect", "connect_s"),
}


def _paired(groups: dict[tuple[str, int], list[dict[str, Any]]], scenario: str,
            n: int, base: str = "bare") -> dict[str, Any]:
    """Ratios to ``base`` run by run (``<key>_paired``, or ``<key>_paired_bare_http``
    against ``bare-http``: their median, min and max).

    Runs are interleaved, so run i of a stack and run i of ``base`` saw the same state
    of the machine; the median of their ratios moves less than the ratio of medians.
    """
    bare = {r.get("run", 0): r for r in groups.get((base, n), []) if "error" not in r}
    out: dict[str, Any] = {}
    if scenario == base or not bare:
        return out
    suffix = "_paired" if base == "bare" else "_paired_" + base.replace("-", "_")
    mine = [r for r in groups.get((scenario, n), [])
            if "error" not in r and r.get("run", 0) in bare]
    for key, (phase, name) in PAIRED_FIELDS.items():
        ratios = []
        for rec in mine:
            a = _num(rec.get(phase, {}).get(name))
            b = _num(bare[rec.get("run", 0)].get(phase, {}).get(name))
            if not (math.isnan(a) or math.isnan(b) or b == 0):
                ratios.append(a / b)
        if ratios:
            out[key + suffix] = {"median": median(ratios), "min": min(ratios),
                                 "max": max(ratios), "runs": len(ratios)}
    return out


BURST_FIELDS = {
    "rate": "deliveries_per_s",
    "p50": "p50_ms",
    "p99": "p99_ms",
    "max": "max_ms",
    "server_cpu": "server_cpu_pct",
    "us": "server_us_per_delivery",
    "aux_us": "aux_us_per_delivery",
    "core0_us": "core0_us_per_delivery",
    "gen_cpu": "gen_cpu_pct",
    "delivered": "delivered_pct",
    "frame": "avg_frame_bytes",
    "other_frames": "other_frames",
    "wire": "server_bytes_per_delivery",
    "writes": "server_writes_per_delivery",
    "compressed": "compressed_pct",
    "compressed_frame": "compressed_wire_bytes",
}
PACED_FIELDS = {
    "paced_p50": "p50_ms",
    "paced_p99": "p99_ms",
    "paced_max": "max_ms",
    "paced_delivered": "delivered_pct",
    "paced_us": "server_us_per_delivery",
    "paced_writes": "server_writes_per_delivery",
}


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _medians(ok: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the successful runs of one (scenario, N)."""
    row: dict[str, Any] = {}
    for key, name in BURST_FIELDS.items():
        row[key] = median([_num(r["burst"].get(name)) for r in ok])
    rates = [_num(r["burst"]["deliveries_per_s"]) for r in ok]
    row["rate_min"], row["rate_max"] = min(rates), max(rates)
    row["core0"] = median([_num(r["burst"]["core_busy_pct"][0]) for r in ok])
    row["core1"] = median([_num(r["burst"]["core_busy_pct"][-1]) for r in ok])
    row["rss_kib"] = median([_num(r["rss_per_conn_kib"]) for r in ok])
    for key, name in (("connect_s", "connect_s"), ("handshakes_s", "handshakes_s")):
        row[key] = median([_num(r["connect"][name]) for r in ok])
    row["connected"] = median([_num(r["connect"]["joined"]) for r in ok])
    row["settled"] = all(r["settle_connect"]["settled"] for r in ok)
    row["settle_s"] = median([_num(r["settle_connect"]["settle_s"]) for r in ok])
    row["settle_frames"] = median([_num(r["settle_connect"]["frames"]) for r in ok])
    row["noise"] = max(noise(r) for r in ok)
    row["noisy"] = any(r.get("noisy") for r in ok)
    row["errors_in_burst"] = sum(
        int(r["burst"]["errors"]) + int(r["burst"]["http_errors"]) for r in ok
    )
    if all("reconnect" in r for r in ok):
        row["reconnect_s"] = median([_num(r["reconnect"]["reconnect_s"]) for r in ok])
        row["reconnect_handshakes_s"] = median(
            [_num(r["reconnect"]["handshakes_s"]) for r in ok])
        row["restart_s"] = median([_num(r["reconnect"]["restart_s"]) for r in ok])
        row["reconnect_answered"] = median([_num(r["reconnect"]["answered"]) for r in ok])
        row["rooms_recovered"] = median([_num(r["reconnect"]["rooms_recovered"]) for r in ok])
        row["rooms_not_recovered"] = median(
            [_num(r["reconnect"]["rooms_not_recovered"]) for r in ok])
    if all("paced" in r for r in ok):
        row["paced_count"] = ok[0]["paced"]["count"]
        for key, name in PACED_FIELDS.items():
            row[key] = median([_num(r["paced"].get(name)) for r in ok])
        paced_us = [_num(r["paced"].get("server_us_per_delivery")) for r in ok]
        row["paced_us_min"], row["paced_us_max"] = min(paced_us), max(paced_us)
    return row


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    p.add_argument("--quick", action="store_true", help="N=1000, M=50, paced 10: a smoke run")
    p.add_argument(
        "--scenarios",
        default=",".join(DEFAULT_SCENARIOS),
        help=f"comma list of {', '.join(SCENARIOS)} (default: %(default)s)",
    )
    p.add_argument("--n", default="1000,5000,10000", help="connection counts")
    p.add_argument("--m", type=int, default=None, help="messages per burst (default per N)")
    p.add_argument("--runs", type=int, default=1, help="runs per figure; medians (3 = baseline)")
    p.add_argument("--paced", type=int, default=25, help="messages of the paced run (0: none)")
    p.add_argument("--rate", type=float, default=5.0, help="paced rate, messages/s")
    p.add_argument("--trigger", choices=("auto", "ws", "http"), default="auto")
    p.add_argument("--connect-concurrency", type=int, default=100)
    p.add_argument(
        "--no-reconnect", dest="reconnect", action="store_false",
        help="skip the reconnect storm (roomcast: restart, every client recovers)",
    )
    p.add_argument(
        "--roomcast-env", action="append", default=[], metavar="K=V", help="extra server env"
    )
    p.add_argument(
        "--max-noise",
        type=float,
        default=30.0,
        help="%% of a core other processes may use during a measured phase (default 30)",
    )
    p.add_argument("--retries", type=int, default=1, help="reruns of a run that was noisy")
    p.add_argument(
        "--nice",
        type=int,
        default=-10,
        help="priority of the runner and its children (default -10; needs root, else kept)",
    )
    p.add_argument(
        "--quiet-wait", type=float, default=15.0, help="max s to wait for a quiet machine"
    )
    p.add_argument("--profile", default="", help="scenarios to py-spy during an extra burst")
    p.add_argument("--profile-n", type=int, default=5000)
    p.add_argument("--native", action="store_true", help="py-spy --native")
    p.add_argument("--out", default=None, help="report path (default benchmarks/RESULTS.md)")
    args = p.parse_args(argv)
    if args.quick:
        args.n = "1000" if args.n == "1000,5000,10000" else args.n
        args.m = args.m or 50
        args.paced = min(args.paced, 10)
        args.out = args.out or str(HERE / "RESULTS-quick.md")
    args.out = args.out or str(HERE / "RESULTS.md")
    return args


async def main_async(args: argparse.Namespace) -> int:
    pin_to(GENERATOR_CPU)
    nofile = raise_nofile()
    nice = set_nice(args.nice)
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        print(f"unknown scenarios: {unknown}", file=sys.stderr)
        return 2
    ns = [int(x) for x in args.n.split(",") if x.strip()]
    opts = Options(
        trigger=args.trigger,
        roomcast_env=dict(kv.split("=", 1) for kv in args.roomcast_env),
    )
    out = Path(args.out)
    json_out = out.with_suffix(".json")
    profile_dir = HERE / "profiles"
    records: list[dict[str, Any]] = []
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="roomcast-bench-") as tmp:
        for n in ns:
            # Run-major: each run of every scenario before the next run, so a drift of
            # the machine (another VM on the host) falls on all stacks alike and the
            # paired ratios of one run compare like with like.
            for run in range(args.runs):
                for scenario in scenarios:
                    m = m_for(scenario, n, args.m)
                    log_dir = Path(tmp) / f"{scenario}-{n}-{run}"
                    log_dir.mkdir()
                    best: dict[str, Any] | None = None
                    for attempt in range(args.retries + 1):
                        t0 = time.time()
                        attempt_dir = log_dir / f"attempt-{attempt}"
                        attempt_dir.mkdir()
                        rec = await one_run(scenario, n, m, args, opts, attempt_dir)
                        rec["run"], rec["attempt"] = run, attempt
                        print(summary_line(rec, time.time() - t0), flush=True)
                        if (
                            best is None
                            or ("error" in best and "error" not in rec)
                            or ("error" not in rec and noise(rec) < noise(best))
                        ):
                            best = rec
                        if "error" not in rec and noise(rec) <= args.max_noise:
                            break
                    assert best is not None
                    best["noisy"] = noise(best) > args.max_noise
                    records.append(best)
        profiles: list[dict[str, Any]] = []
        for scenario in [s.strip() for s in args.profile.split(",") if s.strip()]:
            profile_dir.mkdir(exist_ok=True)
            log_dir = Path(tmp) / f"profile-{scenario}"
            log_dir.mkdir()
            m = m_for(scenario, args.profile_n, args.m)
            rec = await one_run(scenario, args.profile_n, m, args, opts, log_dir, profile_dir)
            profiles.append(rec)
            print(summary_line(rec, 0.0), flush=True)
    meta = machine_info()
    meta.update(
        command="python -m benchmarks.run " + " ".join(sys.argv[1:]),
        started=time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
        duration_s=round(time.time() - started),
        nofile=list(nofile),
        nice=nice,
        connect_concurrency=args.connect_concurrency,
        paced=args.paced,
        rate=args.rate,
        descriptions={s: DESCRIPTIONS[s] for s in scenarios},
    )
    rows = aggregate(records)
    json_out.write_text(
        json.dumps(
            {"meta": meta, "rows": rows, "records": records, "profiles": profiles},
            indent=1,
            default=str,
        )
    )
    write_report(out, meta, rows, profiles)
    print(f"wrote {out} and {json_out}")
    return 0


def summary_line(rec: dict[str, Any], elapsed: float) -> str:
    head = f"{rec['scenario']:>15} N={rec['n']:<6} M={rec['m']:<4}"
    if "error" in rec:
        return f"{head} ERROR {rec['error'][:300]}"
    b = rec["burst"]
    c = rec["connect"]
    line = (
        f"{head} {b['deliveries_per_s']:>9,.0f}/s p50 {b['p50_ms']:.1f} p99 {b['p99_ms']:.1f}ms"
        f" {b['server_us_per_delivery']:.2f}us/dlv srv {b['server_cpu_pct']:.0f}%"
        f" gen {b['gen_cpu_pct']:.0f}% dlv {b['delivered_pct']:.1f}%"
        f" rss {rec['rss_per_conn_kib']:.1f}KiB connect {c['connect_s']:.2f}s"
    )
    if "reconnect" in rec:
        line += f" reconnect {rec['reconnect']['reconnect_s']:.2f}s"
    if "paced" in rec:
        line += f" paced p50 {rec['paced']['p50_ms']:.2f} p99 {rec['paced']['p99_ms']:.2f}ms"
    phases = ("connect", "burst", "paced", "reconnect")
    line += " noise " + "/".join(f"{rec.get(p, {}).get('foreign_pct', 0):.0f}" for p in phases)
    if elapsed:
        line += f" [{elapsed:.0f}s]"
    return line


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
