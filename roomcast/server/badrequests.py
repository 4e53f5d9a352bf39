"""aiohttp's report of a malformed HTTP request, as one throttled warning.

aiohttp logs every request its parser refuses (no ``Host``, a folded header, an
unknown version...) at ERROR with a full traceback, and answers it 400 itself. Anyone
can send those, so they were a free way to flood the log with tracebacks: they are a
client's error, counted here and logged at most once per interval, without the stack.
"""

from __future__ import annotations

import logging
import time

from aiohttp.http_exceptions import HttpProcessingError

from roomcast.logs import Throttled

_log = logging.getLogger("roomcast.http")
_refused = Throttled(_log, "bad_http_request")


class _MalformedRequests(logging.Filter):
    """Drops aiohttp's records of parser errors, logging a throttled line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        # The message's first line names the problem; the rest echoes the request.
        problem = str(exc.message).strip().splitlines()[0][:200] if exc.message else ""
        _refused(time.monotonic(), status=exc.code, problem=problem)
        return False


def quiet_malformed_requests() -> None:
    """Install the filter on aiohttp's server logger (once per process)."""
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _MalformedRequests) for f in logger.filters):
        logger.addFilter(_MalformedRequests())
