"""What grew in the soak's server between two tracemalloc snapshots (``--trace``).

A diagnostic, not a measurement: tracing makes every allocation slower and bigger, so
a traced soak's RSS and latency are not the product's. What it tells is where the
Python memory that stayed went, by the code that allocated it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import tracemalloc
from pathlib import Path
from typing import Any

#: Frames kept per allocation: enough to tell a connection's path from the API's.
FRAMES = 6


def server_env(trace_dir: Path) -> dict[str, str]:
    """What makes the server trace its allocations and snapshot them on SIGUSR2."""
    path = [str(Path(__file__).with_name("soaktrace")), os.environ.get("PYTHONPATH", "")]
    return {
        "PYTHONTRACEMALLOC": str(FRAMES),
        "PYTHONPATH": os.pathsep.join(p for p in path if p),
        "ROOMCAST_SOAK_TRACE_DIR": str(trace_dir),
    }


async def snapshot(pid: int, trace_dir: Path, n: int, timeout: float = 300.0) -> dict[str, Any]:
    """Ask the server for snapshot ``n`` and wait until it is written."""
    done = trace_dir / f"snap{n}.json"
    os.kill(pid, signal.SIGUSR2)
    deadline = time.monotonic() + timeout
    while not done.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the server wrote no snapshot {n} in {timeout:.0f} s")
        await asyncio.sleep(0.5)
    info: dict[str, Any] = json.loads(done.read_text())
    info["path"] = str(trace_dir / f"snap{n}.out")
    return info


def growth(first: dict[str, Any], last: dict[str, Any], top: int = 15) -> dict[str, Any]:
    """The allocation sites that grew (or shrank) most between two snapshots."""
    a = tracemalloc.Snapshot.load(first["path"])
    b = tracemalloc.Snapshot.load(last["path"])
    sites = []
    for stat in b.compare_to(a, "traceback")[:top]:
        frames = [f"{Path(f.filename).name}:{f.lineno}" for f in stat.traceback]
        sites.append({"kib": round(stat.size_diff / 1024, 1), "blocks": stat.count_diff,
                      "frames": frames[-5:]})
    return {
        "traced_mib": [round(first["traced"] / 2**20, 2), round(last["traced"] / 2**20, 2)],
        "collected": [first["collected"], last["collected"]],
        "sites": sites,
    }


def table(g: dict[str, Any]) -> list[str]:
    """Markdown lines for :func:`growth`'s result."""
    lines = [
        f"Python memory traced after a full collection: {g['traced_mib'][0]:.2f} MiB at the "
        f"end of warm-up, {g['traced_mib'][1]:.2f} MiB at the end; cyclic garbage found by "
        f"those collections: {g['collected'][0]} and {g['collected'][1]} objects.",
        "",
        "| KiB | blocks | allocated at (innermost last) |",
        "|---:|---:|---|",
    ]
    for s in g["sites"]:
        lines.append(f"| {s['kib']:+,.1f} | {s['blocks']:+,} | {' < '.join(s['frames'][::-1])} |")
    return lines
