"""Helpers shared by the runner, the load generator and the reference servers."""

from __future__ import annotations

import math
import os
import resource
import socket
import time
import uuid
from collections.abc import Sequence
from typing import Any

import jwt

#: Room every benchmark connection is in (roomcast: from the JWT ``groups`` claim).
BENCH_GROUP = "bench"
BENCH_ROOM = "group:" + BENCH_GROUP
#: Size the bare-form trigger message is padded to (``{"type","room","data":{...}}``).
TARGET_MESSAGE_BYTES = 200
#: CPU of the servers (and redis) and CPU of the load generator (and the runner).
SERVER_CPU = 0
GENERATOR_CPU = 1
#: Descriptor limit the runner raises itself (and so every child) to; see docs.
WANTED_NOFILE = 65536
#: Marker of the timestamp inside delivered payloads; parsed without a JSON decoder.
TS_KEY = b'"ts":'


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def raise_nofile(wanted: int = WANTED_NOFILE) -> tuple[int, int]:
    """Raise RLIMIT_NOFILE (soft, and hard when allowed) towards ``wanted``; return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target_hard = hard
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:
            with open("/proc/sys/fs/nr_open") as fh:
                nr_open = int(fh.read())
        except OSError:
            nr_open = hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, min(wanted, nr_open)))
            target_hard = min(wanted, nr_open)
        except (ValueError, OSError):
            target_hard = hard  # not privileged: stay within the hard limit
    target_soft = wanted if target_hard == resource.RLIM_INFINITY else min(wanted, target_hard)
    if soft < target_soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target_soft, target_hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def pin_to(cpu: int) -> None:
    """Pin the calling process to one CPU (used as a ``preexec_fn`` too)."""
    if cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {cpu})


def mint_token(secret: str, index: int, groups: Sequence[str], ttl_s: int = 3600) -> str:
    """An HS256 JWT with the Go gateway's claims, plus ``groups`` for the bench room."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "user_id": str(uuid.UUID(int=index + 1)),
        "character_id": 90_000_000 + index,
        "character_name": f"bench-{index}",
        "scopes": "",
        "groups": list(groups),
        "iat": now,
        "exp": now + ttl_s,
        "iss": "go-falcon",
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..1); NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def median(values: Sequence[float]) -> float:
    """Median ignoring NaN; NaN when nothing is left."""
    clean = sorted(v for v in values if not math.isnan(v))
    if not clean:
        return math.nan
    mid = len(clean) // 2
    return clean[mid] if len(clean) % 2 else (clean[mid - 1] + clean[mid]) / 2


def parse_ts(payload: bytes) -> int:
    """The ``"ts": <19-digit ns>`` embedded in a delivered payload, or -1."""
    i = payload.find(TS_KEY)
    if i < 0:
        return -1
    j = i + 5
    if payload[j] == 32:  # json.dumps puts a space after the colon
        j += 1
    try:  # time.time_ns() has 19 digits until the year 2286: the fast path
        return int(payload[j : j + 19])
    except ValueError:
        pass
    k = j
    end = len(payload)
    while k < end and 48 <= payload[k] <= 57:
        k += 1
    return int(payload[j:k]) if k > j else -1


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of ``pid`` in seconds, to the nanosecond.

    ``/proc/<pid>/task/*/schedstat`` (time on CPU) instead of ``cpu_times()``, whose
    10 ms clock ticks are too coarse for short windows.
    """
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return math.nan
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as fh:
                total += int(fh.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # the thread ended meanwhile
    return total / 1e9


def _proc_io(pid: int, field: str) -> float:
    try:
        with open(f"/proc/{pid}/io") as fh:
            for line in fh:
                if line.startswith(field):
                    return float(line.split()[1])
    except OSError:
        pass
    return math.nan


def bytes_written(pid: int) -> float:
    """Bytes ``pid`` has passed to write/send system calls (``/proc/<pid>/io`` wchar).

    Sockets included, so over a burst it is the server's bytes on the wire (TCP
    payload) plus whatever else it wrote (HTTP answers to the trigger, logs).
    """
    return _proc_io(pid, "wchar:")


def writes_made(pid: int) -> float:
    """Write/send system calls ``pid`` has made (``/proc/<pid>/io`` syscw): over a burst,
    how many messages share one write (a server that coalesces makes fewer)."""
    return _proc_io(pid, "syscw:")
