"""RESULTS.md: machine, versions, the figures table, ratios, targets.

``python -m benchmarks.report benchmarks/RESULTS.json`` rewrites the report from the
saved figures.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.profile import summarize

HERE = Path(__file__).resolve().parent
GEN_BUSY = 90.0  # gen core CPU at or above this: the figure is bound by the generator
PACKAGES = (
    "aiohttp",
    "picows",
    "aiofastnet",
    "uvloop",
    "python-socketio",
    "python-engineio",
    "uvicorn",
    "websockets",
    "orjson",
    "PyJWT",
    "redis",
    "hiredis",
    "psutil",
    "py-spy",
)


def _run(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def node_versions() -> dict[str, str]:
    """Node.js and the Node peers' packages as locked (``benchmarks/servers/node``)."""
    out = {"node": _run(["node", "--version"]).lstrip("v") or "-"}
    try:
        lock = json.loads((HERE / "servers" / "node" / "package-lock.json").read_text())
    except (OSError, ValueError):
        return out
    for pkg in ("ws", "socket.io", "engine.io", "socket.io-adapter"):
        out[f"{pkg} (npm)"] = lock.get("packages", {}).get(f"node_modules/{pkg}", {}).get(
            "version", "-"
        )
    return out


def machine_info() -> dict[str, Any]:
    model = ""
    for line in _run(["lscpu"]).splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()
    mem = ""
    try:
        with open("/proc/meminfo") as fh:
            mem = f"{int(fh.readline().split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = "-"
    versions.update(node_versions())
    root = HERE.parent
    commit = _run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"])
    dirty = _run(["git", "-C", str(root), "status", "--porcelain", "--", "roomcast"])
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "memory": mem,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "versions": versions,
        "redis_server": _run(["redis-server", "--version"]),
        "roomcast_commit": commit + (" (+ uncommitted changes)" if dirty else ""),
    }


def _f(value: Any, fmt: str = "{:,.0f}") -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "-"
    return "-" if math.isnan(v) else fmt.format(v)


def _ratio(a: Any, b: Any, fmt: str = "{:.2f}") -> str:
    try:
        fa, fb = float(a), float(b)
    except (TypeError, ValueError):
        return "-"
    if math.isnan(fa) or math.isnan(fb) or fb == 0:
        return "-"
    return fmt.format(fa / fb)


def bound(row: dict[str, Any]) -> str:
    """Whether the generator's core (CPU 1, kernel work included) was saturated."""
    gen, srv = row.get("core1", math.nan), row.get("core0", math.nan)
    if math.isnan(gen):
        return "-"
    if gen >= GEN_BUSY and srv >= GEN_BUSY:
        return "both saturated"
    if gen >= GEN_BUSY:
        return "yes (generator)"
    return "no"


def _span(low: Any, high: Any) -> str:
    """``low-high`` over the runs (``-`` for one run)."""
    if low is None or high is None or low == high:
        return "-"
    return f"{_f(low, '{:.2f}')}-{_f(high, '{:.2f}')}"


def _paired_cell(paired: dict[str, Any] | None) -> str:
    """The median of the run-by-run ratios to bare, with their range."""
    if not paired:
        return "-"
    if paired["runs"] == 1:
        return f"{paired['median']:.2f}"
    return f"{paired['median']:.2f} ({paired['min']:.2f}-{paired['max']:.2f})"


def _find(rows: list[dict[str, Any]], scenario: str, n: int) -> dict[str, Any] | None:
    for row in rows:
        if row["scenario"] == scenario and row["n"] == n and row.get("runs"):
            return row
    return None


def main_table(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        "| stack | N | M | gen procs | deliveries/s (median) | min-max | x bare | x socketio "
        "| p50 ms | p99 ms | max ms | RSS/conn KiB | server CPU | server us/delivery "
        "| us/dlv x bare | CPU0 us/delivery | writes/dlv | gen core CPU | gen core busy "
        "| delivered | client-bound? | runs | frame B | other CPU |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if not row.get("runs"):
            out.append(
                f"| {row['scenario']} | {row['n']} | {row['m']} | 1 | failed: "
                f"{(row['errors'] or ['?'])[0][:120]} |" + " |" * 19
            )
            continue
        bare = _find(rows, "bare", row["n"]) or {}
        sio = _find(rows, "socketio", row["n"]) or {}
        out.append(
            "| "
            + " | ".join(
                [
                    row["scenario"],
                    str(row["n"]),
                    str(row["m"]),
                    "1",
                    _f(row["rate"]),
                    f"{row['rate_min'] / 1000:.0f}k-{row['rate_max'] / 1000:.0f}k",
                    _ratio(row["rate"], bare.get("rate")),
                    _ratio(row["rate"], sio.get("rate")),
                    _f(row["p50"], "{:.1f}"),
                    _f(row["p99"], "{:.1f}"),
                    _f(row["max"], "{:.1f}"),
                    _f(row["rss_kib"], "{:.1f}"),
                    _f(row["server_cpu"], "{:.0f}%"),
                    _f(row["us"], "{:.2f}"),
                    _ratio(row["us"], bare.get("us")),
                    _f(row["core0_us"], "{:.2f}"),
                    _f(row.get("writes"), "{:.2f}"),
                    _f(row["gen_cpu"], "{:.0f}%"),
                    _f(row["core1"], "{:.0f}%"),
                    _f(row["delivered"], "{:.1f}%"),
                    bound(row),
                    str(row["runs"]),
                    _f(row["frame"], "{:.0f}"),
                    _f(row.get("noise"), "{:.0f}%") + (" NOISY" if row.get("noisy") else ""),
                ]
            )
            + " |"
        )
    return out


def paced_table(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        "| stack | N | messages | p50 ms | p99 ms | max ms | p99 x bare | server us/delivery "
        "| us/dlv range | us/dlv x bare | x bare run by run | x bare-http run by run "
        "| writes/dlv | delivered |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if "paced_p50" not in row:
            continue
        bare = _find(rows, "bare", row["n"]) or {}
        out.append(
            f"| {row['scenario']} | {row['n']} | {row['paced_count']} "
            f"| {_f(row['paced_p50'], '{:.2f}')} | {_f(row['paced_p99'], '{:.2f}')} "
            f"| {_f(row['paced_max'], '{:.2f}')} "
            f"| {_ratio(row['paced_p99'], bare.get('paced_p99'))} "
            f"| {_f(row['paced_us'], '{:.2f}')} "
            f"| {_span(row.get('paced_us_min'), row.get('paced_us_max'))} "
            f"| {_ratio(row['paced_us'], bare.get('paced_us'))} "
            f"| {_paired_cell(row.get('paced_us_paired'))} "
            f"| {_paired_cell(row.get('paced_us_paired_bare_http'))} "
            f"| {_f(row.get('paced_writes'), '{:.2f}')} "
            f"| {_f(row['paced_delivered'], '{:.1f}%')} |"
        )
    return out


def connect_table(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        "| stack | N | connected+joined | all joined (s) | handshakes done (s) "
        "| idle RSS/conn KiB | settled after connect (s) | frames while settling |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if not row.get("runs"):
            continue
        out.append(
            f"| {row['scenario']} | {row['n']} | {_f(row['connected'])} "
            f"| {_f(row['connect_s'], '{:.2f}')} | {_f(row['handshakes_s'], '{:.2f}')} "
            f"| {_f(row['rss_kib'], '{:.1f}')} "
            f"| {_f(row['settle_s'], '{:.1f}')}{'' if row['settled'] else ' (not idle)'} "
            f"| {_f(row['settle_frames'])} |"
        )
    return out


def wire_table(rows: list[dict[str, Any]]) -> list[str]:
    """Bytes on the wire per delivery for every stack; permessage-deflate against off."""
    out = [
        "| stack | N | payload B | server wrote B/dlv | x roomcast | compressed deliveries "
        "| compressed frame B (received) | server us/dlv | x roomcast | CPU0 us/dlv "
        "| x roomcast | deliveries/s | paced server us/dlv |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if not row.get("runs"):
            continue
        base = _find(rows, "roomcast", row["n"]) or {}
        out.append(
            f"| {row['scenario']} | {row['n']} | {_f(row['frame'], '{:.0f}')} "
            f"| {_f(row.get('wire'), '{:.0f}')} | {_ratio(row.get('wire'), base.get('wire'))} "
            f"| {_f(row.get('compressed'), '{:.0f}%')} "
            f"| {_f(row.get('compressed_frame'), '{:.0f}')} "
            f"| {_f(row['us'], '{:.2f}')} | {_ratio(row['us'], base.get('us'))} "
            f"| {_f(row['core0_us'], '{:.2f}')} | {_ratio(row['core0_us'], base.get('core0_us'))} "
            f"| {_f(row['rate'])} | {_f(row.get('paced_us'), '{:.2f}')} |"
        )
    return out if len(out) > 2 else []


NODE_PEERS = ("node-ws", "node-socketio")


def node_table(rows: list[dict[str, Any]]) -> list[str]:
    """roomcast's ratios to the Node.js peers at the same N, in the same run."""
    figures = (
        ("deliveries/s", "rate"),
        ("server us/dlv", "us"),
        ("burst p99", "p99"),
        ("paced p99", "paced_p99"),
        ("RSS/conn", "rss_kib"),
        ("connect s", "connect_s"),
    )
    head = "| stack | N |" + "".join(
        f" {label} x {peer} |" for label, _ in figures for peer in NODE_PEERS
    )
    out = [head, "|---|---|" + "---|" * (len(figures) * len(NODE_PEERS))]
    for row in rows:
        if not row["scenario"].startswith("roomcast") or not row.get("runs"):
            continue
        peers = [_find(rows, peer, row["n"]) or {} for peer in NODE_PEERS]
        if not any(peers):
            continue
        cells = [
            _ratio(row.get(key), peer.get(key)) for _, key in figures for peer in peers
        ]
        out.append(f"| {row['scenario']} | {row['n']} | " + " | ".join(cells) + " |")
    return out if len(out) > 2 else []


def reconnect_table(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        "| stack | N | all recovery answers (s) | handshakes done (s) | x bare connect "
        "| rooms recovered / not | restart (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if not row.get("runs") or "reconnect_s" not in row:
            continue
        bare = _find(rows, "bare", row["n"]) or {}
        out.append(
            f"| {row['scenario']} | {row['n']} | {_f(row['reconnect_s'], '{:.2f}')} "
            f"| {_f(row['reconnect_handshakes_s'], '{:.2f}')} "
            f"| {_ratio(row['reconnect_s'], bare.get('connect_s'))} "
            f"| {_f(row['rooms_recovered'])} / {_f(row['rooms_not_recovered'])} "
            f"| {_f(row['restart_s'], '{:.1f}')} |"
        )
    return out if len(out) > 2 else []


def targets(rows: list[dict[str, Any]]) -> list[str]:
    """The performance targets, checked against the same run."""
    out = ["| target | N | measured | limit | met? |", "|---|---|---|---|---|"]

    def add(name: str, n: int, value: float, limit: float, at_most: bool) -> None:
        if math.isnan(value) or math.isnan(limit):
            return
        ok = value <= limit if at_most else value >= limit
        out.append(f"| {name} | {n} | {value:,.2f} | {limit:,.2f} | {'yes' if ok else 'NO'} |")

    nan = math.nan
    for row in rows:
        if row["scenario"] != "roomcast" or not row.get("runs"):
            continue
        n = row["n"]
        bare = _find(rows, "bare", n) or {}
        sio = _find(rows, "socketio", n) or {}
        redis = _find(rows, "roomcast-redis", n) or {}
        rate = row["rate"]
        add("server us/delivery <= 1.0x bare", n, row["us"], bare.get("us", nan), True)
        add("deliveries/s >= 0.9x bare", n, rate, 0.9 * bare.get("rate", nan), False)
        add("deliveries/s >= 6x socketio", n, rate, 6 * sio.get("rate", nan), False)
        add("burst p99 ms <= 1.25x bare", n, row["p99"], 1.25 * bare.get("p99", nan), True)
        add(
            "paced p99 ms <= 1.25x bare",
            n,
            row.get("paced_p99", nan),
            1.25 * bare.get("paced_p99", nan),
            True,
        )
        add(
            "paced server us/delivery <= 1.05x bare",
            n,
            row.get("paced_us", nan),
            1.05 * bare.get("paced_us", nan),
            True,
        )
        paired = row.get("paced_us_paired")
        if paired and paired["runs"] >= 3:
            add(f"paced us/delivery, median of {paired['runs']} run-by-run ratios <= 1.05",
                n, paired["median"], 1.05, True)
        add("idle RSS KB/conn <= 20", n, row["rss_kib"] * 1.024, 20.0, True)
        add("redis deliveries/s >= 0.6x single", n, redis.get("rate", nan), 0.6 * rate, False)
        if n == 5000:
            add("connect 5,000 clients, s < 5", n, row["connect_s"], 5.0, True)
        add("connect s <= 1.5x bare", n, row["connect_s"], 1.5 * bare.get("connect_s", nan), True)
        add("redis connect s <= 2x bare", n, redis.get("connect_s", nan),
            2 * bare.get("connect_s", nan), True)
        for stack, limit, what in ((row, 1.5, "connect s"), (redis, 2.0, "redis connect s")):
            paired = stack.get("connect_s_paired")
            if paired and paired["runs"] >= 3:
                add(f"{what}, median of {paired['runs']} run-by-run ratios <= {limit:g}",
                    n, paired["median"], limit, True)
        if n >= 10000:
            add("all connections on one instance", n, row["connected"], float(n), False)
    return out if len(out) > 2 else []


def write_report(
    path: Path, meta: dict[str, Any], rows: list[dict[str, Any]], profiles: list[dict[str, Any]]
) -> None:
    v = meta["versions"]
    lines = [
        "# roomcast fan-out benchmark",
        "",
        f"Generated by `{meta['command']}` on {meta['started']} ({meta['duration_s']} s).",
        "Method and flags: `docs/topics/benchmark.md`.",
        "",
        "## Machine and versions",
        f"- CPU: {meta['cpu_model']}, {meta['cores']} cores; memory {meta['memory']}; "
        f"kernel {meta['kernel']}; Python {meta['python']}.",
        "- Servers (and redis) pinned to CPU 0; the picows load generator (one process) and the "
        "runner pinned to CPU 1; RLIMIT_NOFILE raised to "
        f"{meta['nofile'][0]} (soft) / {meta['nofile'][1]} (hard) before anything starts; "
        f"every benchmark process at nice {meta.get('nice', 0)}.",
        "- " + ", ".join(f"{k} {val}" for k, val in v.items()) + f"; {meta['redis_server']}.",
        f"- roomcast commit {meta['roomcast_commit']}.",
        f"- Generator: picows client, {meta['connect_concurrency']} handshakes in flight; "
        '~200-byte JSON messages carrying `"ts": time.time_ns()` in `data`.',
        "",
        "Stacks:",
    ]
    for name, desc in meta["descriptions"].items():
        lines.append(f"- `{name}`: {desc}.")
    trig = sorted({f"{r['scenario']}: {r['trigger']}" for r in rows if r.get("trigger")})
    lines.append(f"- Trigger (how messages are published): {'; '.join(trig)}.")
    for row in rows:
        for note in row.get("notes", []):
            line = f"- {row['scenario']}: {note}."
            if line not in lines:
                lines.append(line)
    lines += [
        "",
        "## Burst: M messages at full speed to N connections in one room",
        "",
        "deliveries/s = delivered / (last delivery - ts of the first message); latency = "
        "receive time - embedded ts; RSS/conn = (server VmRSS with N connected - before) / N; "
        "server CPU and server us/delivery = server process CPU (all threads, from "
        "/proc/<pid>/task/*/schedstat) in the delivery window, as a share of the window and "
        "per delivery (roomcast-redis: both instances; redis apart below); CPU0 us/delivery = "
        "the whole server core's busy time (/proc/stat, so kernel work such as the loopback's "
        "softirq that no process is charged for is included) per delivery; writes/dlv = the "
        "server's write system calls (/proc/<pid>/io syscw, logs and HTTP answers included) "
        "per delivery: below 1 when several messages to a connection share one write; "
        "gen core CPU = generator process CPU / window; gen core busy = the whole generator "
        "core (CPU 1). "
        f"client-bound? = gen core busy >= {GEN_BUSY:.0f}% ('both saturated' when CPU 0 is too). "
        "other CPU = the largest share of a core that processes outside the benchmark used "
        "during a measured phase (connect, burst, paced); NOISY = above --max-noise after "
        "the retries, so that row's figures are not clean.",
        "",
        *main_table(rows),
        "",
    ]
    redis_rows = [r for r in rows if r["scenario"] == "roomcast-redis" and r.get("runs")]
    for r in redis_rows:
        lines.append(
            f"- roomcast-redis N={r['n']}: redis-server used {_f(r['aux_us'], '{:.2f}')} "
            "us/delivery more on the server CPU."
        )
    bound_rows = [r for r in rows if r.get("runs") and bound(r) != "no"]
    if bound_rows:
        names = ", ".join(f"{r['scenario']} N={r['n']}" for r in bound_rows)
        lines += [
            "",
            f"Generator-bound (gen core busy >= {GEN_BUSY:.0f}%): {names}. For these rows "
            "deliveries/s and latency are a property of server + one Python client core; "
            "server us/delivery is the figure that compares servers.",
        ]
    else:
        lines += ["", f"No row had its generator core at >= {GEN_BUSY:.0f}%."]
    lines += [
        "",
        f"## Paced: {meta['paced']} messages at {meta['rate']:g}/s (idle-path latency)",
        "",
        "Latency over every delivery; at large N it includes the time to reach the last "
        "recipient of one message.",
        "",
        *paced_table(rows),
        "",
        "## Connect storm and idle memory",
        "",
        "Time from the first handshake until every client has its `room_joined` (roomcast: "
        "handshake + JWT + rooms; bare, node-ws: handshake + registration; socketio, "
        "node-socketio: Engine.IO open + "
        "namespace connect + room), and the idle RSS per connection.",
        "",
        *connect_table(rows),
        "",
    ]
    storm = reconnect_table(rows)
    if storm:
        lines += [
            "## Reconnect storm after a restart",
            "",
            "Every client connected with its positions; the servers stopped gracefully "
            "(the single instance saves its streams to `ROOMCAST_HISTORY_SNAPSHOT`) and "
            "started again; every client reconnects with `?recover=1` and sends `recover` "
            "with its positions. Time from the first reconnect until each client has "
            "`room_joined` with `recovered` for every room it named (x bare: against the "
            "bare server's connect of the same N).",
            "",
            *storm,
            "",
        ]
    wire = wire_table(rows)
    if wire:
        lines += [
            "## Bytes on the wire and permessage-deflate",
            "",
            "server wrote B/dlv = bytes the server process(es) passed to write/send system "
            "calls during the burst (`/proc/<pid>/io` wchar) per delivery: frames with their "
            "headers, plus the few HTTP answers to the trigger. payload B = the text each "
            "client got (inflated); compressed deliveries = share that came with RSV1 set; "
            "compressed frame B = header + compressed payload as the generator received it. "
            "The message's padding is one repeated letter, which deflate all but removes: "
            "what remains is the envelope, ids and timestamps, so the saving shown is about "
            "the most a ~200-byte message of this shape gets. `x roomcast`: against the "
            "`roomcast` row (deflate off) at the same N.",
            "",
            *wire,
            "",
        ]
    node = node_table(rows)
    if node:
        lines += [
            "## Against the Node.js peers",
            "",
            "roomcast's figure divided by the Node.js peer's at the same N in this run "
            "(deliveries/s: above 1 is faster; the others: below 1 is better).",
            "",
            *node,
            "",
        ]
    tgt = targets(rows)
    if tgt:
        lines += ["## Targets, this run", "", *tgt, ""]
    failed = [r for r in rows if r.get("errors")]
    if failed:
        lines += ["## Failures", ""]
        for r in failed:
            for err in r["errors"]:
                lines.append(f"- {r['scenario']} N={r['n']}: `{err[:400]}`")
        lines.append("")
    for prof in profiles:
        lines += [f"## Profiles: {prof['scenario']} N={prof['n']} M={prof['m']} (py-spy)", ""]
        if "error" in prof:
            lines += [f"profile run failed: {prof['error']}", ""]
        b = prof.get("burst", {})
        connect_s = _f(prof.get("connect", {}).get("connect_s"), "{:.2f}")
        rate = _f(b.get("deliveries_per_s"))
        us = _f(b.get("server_us_per_delivery"), "{:.2f}")
        lines += [
            f"The run under the profiler: connect {connect_s} s, burst {rate} deliveries/s, "
            f"{us} us/delivery (sampling costs some). Raw stacks: `benchmarks/profiles/`.",
            "",
        ]
        for file in prof.get("profiles", []):
            lines += [f"### `{Path(file).name}`", "", *summarize(Path(file)), ""]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    src = Path(sys.argv[1] if len(sys.argv) > 1 else HERE / "RESULTS.json")
    data = json.loads(src.read_text())
    write_report(src.with_suffix(".md"), data["meta"], data["rows"], data.get("profiles", []))


if __name__ == "__main__":
    main()
