"""Background tasks that cannot die quietly.

Every long-running task of the gateway (the Redis listener, the registry writer, the
liveness sweep, room-event coalescing) runs under :func:`supervise`: an exception is
logged with its traceback, counted in ``roomcast_background_task_failures{task}``, and
the task is started again after a capped, growing delay. A task that returns has
finished its job and is not restarted. One-shot tasks go through :func:`spawn`, which
logs and counts a failure the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from roomcast import metrics
from roomcast.logs import log_event

_log = logging.getLogger("roomcast.supervisor")

#: Restart delays: the first, and the cap of the doubling.
FIRST_DELAY = 0.1
MAX_DELAY = 5.0
#: A task that ran this long before failing starts again from the first delay.
HEALTHY_RUN = 60.0


def _failed(name: str) -> None:
    metrics.TASK_FAILURES.labels(name).inc()


def supervise(
    name: str, run: Callable[[], Coroutine[Any, Any, None]]
) -> asyncio.Task[None]:
    """Run ``run()`` in a task that is restarted whenever it raises.

    Cancelling the returned task stops it (the cancellation reaches ``run``).
    """
    return asyncio.get_running_loop().create_task(_supervised(name, run), name=name)


async def _supervised(name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
    loop = asyncio.get_running_loop()
    delay = FIRST_DELAY
    while True:
        started = loop.time()
        try:
            await run()
            return
        except Exception:
            _failed(name)
            if loop.time() - started >= HEALTHY_RUN:
                delay = FIRST_DELAY
            log_event(_log, "task_failed", logging.ERROR, task=name, restart_in=delay,
                      exc_info=True)
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_DELAY)
        log_event(_log, "task_restarted", logging.WARNING, task=name)


def spawn(
    name: str, coro: Coroutine[Any, Any, None], keep: set[asyncio.Task[None]]
) -> asyncio.Task[None]:
    """Run a one-shot coroutine whose failure is logged and counted, never lost.

    ``keep`` holds the task until it is done (the loop keeps only weak references).
    """
    task = asyncio.get_running_loop().create_task(_once(name, coro), name=name)
    keep.add(task)
    task.add_done_callback(keep.discard)
    return task


async def _once(name: str, coro: Coroutine[Any, Any, None]) -> None:
    try:
        await coro
    except Exception:
        _failed(name)
        log_event(_log, "task_failed", logging.ERROR, task=name, exc_info=True)
