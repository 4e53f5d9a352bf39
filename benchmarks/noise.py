"""Other people's CPU: a benchmark on a shared 2-core box must know when it was not alone.

The foreign load is the CPU time, in a window, of every user-space process that is not
the runner or one of its children (kernel threads are left out: the loopback's softirq
work they do is ours). A run whose burst shared the machine is retried, then flagged.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

import psutil


def _own_pids() -> set[int]:
    me = psutil.Process(os.getpid())
    pids = {me.pid}
    with contextlib.suppress(psutil.Error):
        pids.update(child.pid for child in me.children(recursive=True))
    return pids


def _cpu_by_pid() -> dict[int, float]:
    own = _own_pids()
    out: dict[int, float] = {}
    for proc in psutil.process_iter(["ppid", "cpu_times"]):
        pid = proc.pid
        if pid in own or pid == 2 or proc.info["ppid"] == 2:
            continue
        times = proc.info["cpu_times"]
        if times is not None:
            out[pid] = times.user + times.system
    return out


class ForeignMeter:
    """CPU share of foreign processes between ``start`` and ``stop`` (1.0 = one core)."""

    def __init__(self) -> None:
        self._before: dict[int, float] = {}
        self._t0 = 0.0

    def start(self) -> None:
        self._before = _cpu_by_pid()
        self._t0 = time.perf_counter()

    def stop(self) -> float:
        after = _cpu_by_pid()
        wall = max(time.perf_counter() - self._t0, 1e-9)
        used = 0.0
        for pid, cpu in after.items():
            used += cpu - self._before.get(pid, 0.0)  # a new process: all of its time
        return max(used, 0.0) / wall


async def wait_quiet(
    limit: float, window_s: float = 1.0, need: int = 2, deadline_s: float = 120.0
) -> tuple[bool, float]:
    """Wait until ``need`` windows in a row had foreign load below ``limit``.

    Returns (quiet, seconds waited); gives up after ``deadline_s``.
    """
    t0 = time.perf_counter()
    calm = 0
    meter = ForeignMeter()
    while time.perf_counter() - t0 < deadline_s:
        meter.start()
        await asyncio.sleep(window_s)
        calm = calm + 1 if meter.stop() < limit else 0
        if calm >= need:
            return True, time.perf_counter() - t0
    return False, time.perf_counter() - t0
