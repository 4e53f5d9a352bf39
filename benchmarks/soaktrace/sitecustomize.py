"""Loaded into the soak's server by ``python -m benchmarks.soak --trace`` (PYTHONPATH).

On SIGUSR2: a full collection (what it found is cyclic garbage), then a tracemalloc
snapshot of what is still allocated, written to ``$ROOMCAST_SOAK_TRACE_DIR`` as
``snapN.out`` with ``snapN.json`` (traced bytes, objects collected) written last.
Tracing starts with the interpreter (``PYTHONTRACEMALLOC``); never in a measured run.
"""

import gc
import json
import os
import signal
import tracemalloc

_taken = [0]


def _snapshot(signum: int, frame: object) -> None:
    _taken[0] += 1
    path = os.path.join(os.environ["ROOMCAST_SOAK_TRACE_DIR"], f"snap{_taken[0]}")
    collected = gc.collect()
    tracemalloc.take_snapshot().dump(path + ".out")
    with open(path + ".json.part", "w") as fh:
        json.dump({"traced": tracemalloc.get_traced_memory()[0], "collected": collected}, fh)
    os.replace(path + ".json.part", path + ".json")


if os.environ.get("ROOMCAST_SOAK_TRACE_DIR"):
    signal.signal(signal.SIGUSR2, _snapshot)
