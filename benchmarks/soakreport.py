"""The soak's result files: JSON, CSV, SVG plot, markdown, and RESULTS.md's Soak section."""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
from pathlib import Path
from typing import Any

from benchmarks.soakgrowth import table
from benchmarks.svgplot import Panel, charts

#: Other processes' mean share of a core below which the machine counts as quiet.
_QUIET_OTHER_PCT = 10.0
BEGIN = "<!-- soak:begin (written by python -m benchmarks.soak) -->"
END = "<!-- soak:end -->"
CSV_KEYS = (
    "t_s", "rss_mib", "fds", "server_conns", "server_rooms", "live", "p50_ms", "p99_ms",
    "max_ms", "interval_deliveries", "delivered", "closed", "opened", "users_seen",
    "connect_failures", "refilled", "unexpected_closes", "ws_errors", "posts", "post_errors",
    "post_not_found", "posts_skipped", "other_frames", "server_cpu_pct", "other_cpu_pct",
    "load1",
)  # fmt: skip


def _median(rows: list[dict[str, Any]], key: str) -> float:
    """Median of ``key`` over ``rows``; NaN and -1 (the status call failed) left out."""
    values = [float(r[key]) for r in rows if not math.isnan(float(r[key])) and r[key] != -1]
    return statistics.median(values) if values else math.nan


def slope_per_10min(rows: list[dict[str, Any]], key: str) -> float:
    """Least-squares slope of ``key`` over time, per 10 minutes."""
    pts = [(r["t_s"], float(r[key])) for r in rows]
    if len(pts) < 2:
        return math.nan
    mx = sum(t for t, _ in pts) / len(pts)
    my = sum(v for _, v in pts) / len(pts)
    den = sum((t - mx) ** 2 for t, _ in pts)
    return 600 * sum((t - mx) * (v - my) for t, v in pts) / den if den else math.nan


def summarize(record: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """RSS after warm-up vs at the end, descriptors, churn, latency, errors."""
    rows: list[dict[str, Any]] = record.get("samples", [])
    if not rows:
        return {"flat": False, "reason": "no samples"}
    for r in rows:
        r["other_fds"] = r["fds"] - r["server_conns"] if r["server_conns"] >= 0 else math.nan
    warm_t = args.warmup * 60
    total_t = rows[-1]["t_s"]
    warm = [r for r in rows if warm_t <= r["t_s"] < warm_t + 60] or rows[:1]
    end = [r for r in rows if r["t_s"] > total_t - 60]
    after = [r for r in rows if r["t_s"] >= warm_t]
    rss_warm, rss_end = _median(warm, "rss_mib"), _median(end, "rss_mib")
    change = (rss_end - rss_warm) / rss_warm
    last = rows[-1]
    minutes = record.get("minutes", [])
    p99s = [m["p99_ms"] for m in minutes if not math.isnan(m["p99_ms"])]
    closed_after = record.get("after_close", {})
    base = record.get("baseline", {})
    out = {
        "minutes_run": total_t / 60,
        "rss_baseline_mib": base.get("rss_mib", math.nan),
        "rss_warm_mib": rss_warm,
        "rss_end_mib": rss_end,
        "rss_max_mib": max(r["rss_mib"] for r in rows),
        "rss_change_pct": 100 * change,
        "rss_slope_mib_per_10min": slope_per_10min(after, "rss_mib"),
        "flat": abs(change) <= args.tolerance,
        "fds_baseline": base.get("fds", -1),
        "other_fds_warm": _median(warm, "other_fds"),
        "other_fds_end": _median(end, "other_fds"),
        "fds_after_close": closed_after.get("fds", -1),
        "conns_after_close": closed_after.get("server_conns", -1),
        "rooms_after_close": closed_after.get("server_rooms", -1),
        "rss_after_close_mib": closed_after.get("rss_mib", math.nan),
        "rooms_warm": _median(warm, "server_rooms"),
        "rooms_end": _median(end, "server_rooms"),
        "closed": last["closed"],
        "opened": last["opened"],
        "churn_expected": round(args.churn * args.n * total_t / 60),
        "users_seen": last["users_seen"],
        "refilled": last.get("refilled", 0),
        "delivered": last["delivered"],
        "posts": last["posts"],
        "p99_ms_median_minute": statistics.median(p99s) if p99s else math.nan,
        "p99_ms_worst_minute": max(p99s) if p99s else math.nan,
        "errors": {
            k: last[k]
            for k in (
                "connect_failures",
                "unexpected_closes",
                "ws_errors",
                "post_errors",
                "post_not_found",
                "posts_skipped",
            )
        },
        "load1_mean": statistics.mean(r["load1"] for r in rows),
        "load1_max": max(r["load1"] for r in rows),
        "other_cpu_pct_mean": statistics.mean(r["other_cpu_pct"] for r in rows),
        "server_cpu_pct_mean": statistics.mean(r["server_cpu_pct"] for r in rows),
    }
    out["fds_back"] = 0 <= out["fds_after_close"] <= out["fds_baseline"]
    return out


def plot(record: dict[str, Any], summary: dict[str, Any], args: argparse.Namespace) -> str:
    rows = record["samples"]
    xs = [r["t_s"] / 60 for r in rows]
    warm = summary["rss_warm_mib"]
    tol = args.tolerance
    panels = [
        Panel(
            f"server RSS (MiB); band: warm-up value ±{round(100 * tol)}%",
            [r["rss_mib"] for r in rows],
            band=(warm * (1 - tol), warm * (1 + tol)),
        ),
        Panel(
            "server open descriptors",
            [r["fds"] for r in rows],
            color="#9467bd",
        ),
        Panel("p99 latency per 10 s (ms)", [r["p99_ms"] for r in rows], color="#ff7f0e", y_min=0),
    ]
    n = record["args"]["n"]
    title = (
        f"roomcast soak: {n:,} connections, {100 * args.churn:.0f}% churn/min, "
        f"{summary['minutes_run']:.0f} min"
    )
    return charts(
        xs, panels, "minutes since the connect storm", title, [(args.warmup, "warm-up")], x_min=0.0
    )


def _f(v: Any, digits: int = 1) -> str:
    if isinstance(v, float):
        return "-" if math.isnan(v) else f"{v:,.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _known(v: int) -> str:
    return "-" if v < 0 else f"{v:,}"


def _machine_load(s: dict[str, Any]) -> str:
    """How busy the machine was besides the soak, and what that means for its latencies."""
    load = (f"load average {s['load1_mean']:.2f} on average (max {s['load1_max']:.2f}), other "
            f"processes used {s['other_cpu_pct_mean']:.0f}% of a core on average")
    # The soak's own two processes make a load of up to ~2 on this 2-core layout.
    if s["other_cpu_pct_mean"] < _QUIET_OTHER_PCT:
        return f"The machine was otherwise quiet: {load}."
    return (f"The machine was shared: {load}, so the latency figures are those of a loaded "
            "machine.")


def section(
    record: dict[str, Any], s: dict[str, Any], args: argparse.Namespace, svg: str
) -> list[str]:
    m = record["machine"]
    verdict = "flat" if s["flat"] else "NOT flat"
    errs = s["errors"]
    lines = [
        f"## Soak: {args.n:,} connections, {100 * args.churn:.0f}% churn a minute, "
        f"{s['minutes_run']:.0f} minutes ({record['started'][:10]})",
        "",
        f"`{record['command']}` on commit {m['roomcast_commit']}, {record['started']} to "
        f"{record['finished']}; {m['cores']} cores ({m['cpu_model']}), server on CPU 0, "
        f"clients and API traffic from one process on CPU 1. {_machine_load(s)} Method: "
        "`docs/topics/benchmark.md` (Soak).",
        "",
        f"- **Memory: {verdict}.** RSS after warm-up (median of minute "
        f"{args.warmup:.0f}-{args.warmup + 1:.0f}) {s['rss_warm_mib']:.1f} MiB, at the end "
        f"(median of the last minute) {s['rss_end_mib']:.1f} MiB: {s['rss_change_pct']:+.1f}% "
        f"(allowed ±{100 * args.tolerance:.0f}%); slope after warm-up "
        f"{s['rss_slope_mib_per_10min']:+.2f} MiB per 10 min; max {s['rss_max_mib']:.1f} MiB; "
        f"idle server before connecting {s['rss_baseline_mib']:.1f} MiB, after every client "
        f"left {s['rss_after_close_mib']:.1f} MiB.",
        f"- **Descriptors**: {s['fds_baseline']} before connecting; open descriptors minus "
        f"connections {s['other_fds_warm']:.0f} after warm-up, {s['other_fds_end']:.0f} at "
        f"the end; {s['fds_after_close']} once every client left "
        f"({'back to the start' if s['fds_back'] else 'NOT back to the start'}; server "
        f"connections {s['conns_after_close']}, rooms {s['rooms_after_close']}).",
        f"- **Churn**: {s['closed']:,} connections closed and {s['opened']:,} opened "
        f"(expected {s['churn_expected']:,}), {s['users_seen']:,} distinct users; "
        f"server rooms {s['rooms_warm']:,.0f} after warm-up, {s['rooms_end']:,.0f} at the end.",
        f"- **Traffic**: {s['posts']:,} API publications ({args.user_rate:g}/s to users, "
        f"{args.corp_rate:g}/s to {args.corps} small groups, {args.alliance_rate:g}/s to "
        f"{args.alliances} large groups), {s['delivered']:,} deliveries; p99 latency "
        f"{s['p99_ms_median_minute']:.1f} ms (median minute), {s['p99_ms_worst_minute']:.1f} "
        "ms (worst minute).",
        f"- **Errors**: {errs['connect_failures']} failed connects (after 3 attempts each; "
        f"{s['refilled']} of their slots filled again by the churn), "
        f"{errs['unexpected_closes']} "
        f"closes the client did not ask for, {errs['ws_errors']} error frames, "
        f"{errs['post_errors']} failed API calls; {errs['post_not_found']} publications to a "
        f"user who had just left (404), {errs['posts_skipped']:,} skipped (API busy).",
        "",
        f"![RSS, descriptors and p99 latency over the soak]({svg})",
        "",
        "| minute | conns | RSS MiB | fds | rooms | deliveries | p50 ms | p99 ms | max ms "
        "| churned | errors | load |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in record.get("minutes", []):
        lines.append(
            f"| {row['minute']} | {_known(row['server_conns'])} | {row['rss_mib']:.1f} | "
            f"{row['fds']:,} | {_known(row['server_rooms'])} | {row['deliveries']:,} | "
            f"{_f(row['p50_ms'])} | {_f(row['p99_ms'])} | {_f(row['max_ms'])} | "
            f"{row['closed']:,} | {row['errors']} | {row['load1']:.2f} |"
        )
    return lines


def update_results_md(path: Path, lines: list[str]) -> None:
    """Replace the Soak section of RESULTS.md (or put it before the machine section)."""
    block = "\n".join([BEGIN, *lines, END]) + "\n"
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + block + tail.lstrip("\n")
    elif "\n## Machine and versions" in text:
        head, tail = text.split("\n## Machine and versions", 1)
        text = head + "\n" + block + "\n## Machine and versions" + tail
    else:
        text = text + "\n" + block
    path.write_text(text)


def _cell(v: Any) -> Any:
    return round(v, 3) if isinstance(v, float) else v


def write_outputs(record: dict[str, Any], args: argparse.Namespace) -> str:
    """Write every file; return the one-line verdict."""
    out: Path = args.out
    stem = args.name
    s = record["summary"] = summarize(record, args)
    (out / f"RESULTS-{stem}.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    if not record.get("samples"):
        return f"[soak] no samples: {record.get('error', '')}"
    with open(out / f"RESULTS-{stem}.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_KEYS)
        for r in record["samples"]:
            w.writerow([_cell(r.get(k, "")) for k in CSV_KEYS])
    svg = f"{stem}.svg"
    (out / svg).write_text(plot(record, s, args))
    lines = section(record, s, args, svg)
    grew = ["", "## What grew (`--trace`: tracemalloc, not the product's figures)", "",
            *table(record["growth"])] if record.get("growth") else []
    (out / f"RESULTS-{stem}.md").write_text(
        "\n".join(["# roomcast soak", "", *lines[2:], *grew])
        + f"\n\nEvery sample (every {args.interval:g} s): `RESULTS-{stem}.csv`; "
        f"everything: `RESULTS-{stem}.json`.\n"
    )
    if not args.no_results_md:
        update_results_md(out / "RESULTS.md", lines)
    return (
        f"[soak] RSS {s['rss_warm_mib']:.1f} -> {s['rss_end_mib']:.1f} MiB "
        f"({s['rss_change_pct']:+.1f}%): {'flat' if s['flat'] else 'NOT flat'}; fds after "
        f"close {s['fds_after_close']} (baseline {s['fds_baseline']}); churned {s['closed']}; "
        f"errors {s['errors']}"
    )


def main(argv: list[str] | None = None) -> int:
    """Rewrite the files of a soak from its JSON (e.g. after changing this module)."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.soakreport")
    p.add_argument("json", type=Path)
    p.add_argument("--no-results-md", action="store_true")
    a = p.parse_args(argv)
    record = json.loads(a.json.read_text())
    args = argparse.Namespace(**record["args"])
    args.out = a.json.parent
    args.no_results_md = a.no_results_md or args.no_results_md
    print(write_outputs(record, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
