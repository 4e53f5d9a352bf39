"""File descriptors: the soft limit raised at start, and a warning when they run out.

Every connection holds a descriptor. When none is left, ``accept`` fails; the default
event loop (uvloop's libuv) then accepts and closes the waiting connections without a
word, and asyncio's loop reports each failure separately. :class:`DescriptorWatch` turns
both into one throttled ``descriptors_exhausted`` warning: it probes for a free
descriptor every second and handles asyncio's accept errors.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import resource
from typing import Any

from roomcast.logs import Throttled, log_event

_log = logging.getLogger("roomcast.server")

#: Never ask for more than this: some kernels refuse larger soft limits (fs.nr_open).
MAX_SOFT_LIMIT = 1 << 20
_EXHAUSTED = (errno.EMFILE, errno.ENFILE)


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft descriptor limit to the hard one (capped); returns (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = MAX_SOFT_LIMIT if hard == resource.RLIM_INFINITY else min(hard, MAX_SOFT_LIMIT)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log_event(_log, "fd_limit_unchanged", logging.WARNING, soft=soft, hard=hard,
                      error=str(exc))
    return soft, hard


class DescriptorWatch:
    """Logs (throttled) whenever new connections cannot be accepted for lack of descriptors."""

    def __init__(self, *, interval: float = 1.0, log_interval: float = 10.0) -> None:
        self._interval = interval
        self._warn = Throttled(_log, "descriptors_exhausted", logging.ERROR,
                               interval=log_interval)

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Route asyncio's accept failures to the throttled warning (others as before)."""
        previous = loop.get_exception_handler()

        def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            exc = context.get("exception")
            if isinstance(exc, OSError) and exc.errno in _EXHAUSTED:
                self._exhausted(loop, "accept")
            elif previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)

        loop.set_exception_handler(handle)

    async def run(self) -> None:
        """Probe for a free descriptor every interval (libuv reports nothing itself)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._interval)
            try:
                os.close(os.open(os.devnull, os.O_RDONLY))
            except OSError as exc:
                if exc.errno not in _EXHAUSTED:
                    raise
                self._exhausted(loop, "probe")

    def _exhausted(self, loop: asyncio.AbstractEventLoop, seen_by: str) -> None:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        self._warn(loop.time(), limit=soft, seen_by=seen_by,
                   hint="new connections are refused; raise the descriptor limit "
                        "(LimitNOFILE=) or lower ROOMCAST_MAX_PENDING_HANDSHAKES")
