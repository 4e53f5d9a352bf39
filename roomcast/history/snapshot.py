"""The memory engine's streams saved at a graceful stop and loaded at the next start,
so a restarted single instance keeps its epochs and clients recover across it.

A file of JSON lines, one per room; TTLs are stored as what remained at the stop, less
the time the instance was down. A missing or unreadable file starts every stream
afresh (new epochs: clients are told they did not recover), never a failed start.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import orjson

from roomcast.history.memory import MemoryHistory
from roomcast.logs import log_event

_log = logging.getLogger("roomcast.history.snapshot")


def save(engine: MemoryHistory, path: str) -> int:
    """Write the streams to ``path`` (atomically); returns how many rooms."""
    rooms = engine.export()
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    with tmp.open("wb") as out:
        out.write(orjson.dumps({"saved_at": time.time()}) + b"\n")
        for room in rooms:
            out.write(orjson.dumps(room) + b"\n")
    os.replace(tmp, target)
    log_event(_log, "history_snapshot_saved", rooms=len(rooms), path=path)
    return len(rooms)


def load(engine: MemoryHistory, path: str) -> int:
    """Read the streams saved at ``path``, if any; returns how many rooms."""
    try:
        lines = Path(path).read_bytes().splitlines()
        header = orjson.loads(lines[0]) if lines else {}
        down = max(0.0, time.time() - float(header.get("saved_at", time.time())))
        rooms = [orjson.loads(line) for line in lines[1:]]
        engine.restore(rooms, elapsed=down)
    except FileNotFoundError:
        return 0
    except (OSError, ValueError, TypeError, KeyError) as exc:
        log_event(_log, "history_snapshot_unreadable", logging.WARNING, path=path,
                  error=str(exc)[:200])
        return 0
    log_event(_log, "history_snapshot_loaded", rooms=len(rooms), path=path)
    return len(rooms)
