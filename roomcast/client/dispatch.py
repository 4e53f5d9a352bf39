"""Handler registries and calling handlers that may be sync or async."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")

Handler = Callable[[T], object]
"""A sync or async callable taking one argument; its return value is ignored."""

logger = logging.getLogger("roomcast.client")

#: Key of the handlers that receive every message.
ANY = "*"


class Handlers:
    """Handlers registered under string keys (a message type, ``room:<id>`` or ``*``)."""

    def __init__(self) -> None:
        self._by_key: dict[str, list[Callable[[Any], Any]]] = {}

    def add(self, key: str, handler: Callable[[Any], Any]) -> Callable[[], None]:
        """Register ``handler`` under ``key``; returns a function that unregisters it."""
        self._by_key.setdefault(key, []).append(handler)

        def remove() -> None:
            handlers = self._by_key.get(key, [])
            if handler in handlers:
                handlers.remove(handler)
            if not handlers:
                self._by_key.pop(key, None)

        return remove

    def lookup(self, keys: Iterable[str]) -> list[Callable[[Any], Any]]:
        """Every handler under ``keys``, in key order then registration order."""
        found: list[Callable[[Any], Any]] = []
        for key in keys:
            found.extend(self._by_key.get(key, ()))
        return found


async def call_all(handlers: Iterable[Callable[[T], Any]], arg: T, what: str) -> None:
    """Call each handler in turn, awaiting async ones.

    A failing handler is logged and the others still run (one handler's
    exception must not stop the rest).
    """
    for handler in handlers:
        try:
            result = handler(arg)
            if inspect.isawaitable(result):
                await result
        except Exception:
            _log_failure(handler, what)


def call_soon(
    handler: Callable[[T], Any], arg: T, what: str, tasks: set[asyncio.Task[None]]
) -> None:
    """Call ``handler`` without waiting for it: an async result runs as a task."""
    try:
        result = handler(arg)
    except Exception:
        _log_failure(handler, what)
        return
    if inspect.isawaitable(result):

        async def run(awaitable: Awaitable[Any] = result) -> None:
            try:
                await awaitable
            except Exception:
                _log_failure(handler, what)

        task = asyncio.get_running_loop().create_task(run())
        tasks.add(task)
        task.add_done_callback(tasks.discard)


def _log_failure(handler: Callable[..., Any], what: str) -> None:
    name = getattr(handler, "__qualname__", type(handler).__name__)
    # log_event cannot carry exc_info; the traceback is what a handler author needs.
    logger.error("handler_failed", exc_info=True, extra={"fields": {"for": what, "handler": name}})
