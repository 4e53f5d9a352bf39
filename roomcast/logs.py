"""Structured logging: one event per line, as text or JSON."""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson

_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def log_event(
    logger: logging.Logger,
    event: str,
    level: int = logging.INFO,
    *,
    exc_info: bool = False,
    **fields: Any,
) -> None:
    """Log ``event`` with key/value ``fields``; callers never pass tokens or cookies.

    ``exc_info=True`` (inside an ``except``) attaches the traceback, as in ``logging``.
    """
    if logger.isEnabledFor(level):
        logger.log(level, event, exc_info=exc_info, extra={"fields": fields})


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "event", ...fields}`` per line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        out.update(getattr(record, "fields", {}))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def _text_value(value: Any) -> str:
    """A field as text on one line: quoted and escaped (JSON) when it holds a space, a quote
    or a control character, so a value (a user id with a newline) cannot forge a line."""
    text = str(value)
    if text and text.isprintable() and not any(c in text for c in ' "='):
        return text
    return orjson.dumps(text).decode()


class TextFormatter(logging.Formatter):
    """``time level logger event key=value ...`` per line."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", {})
        tail = " ".join(f"{k}={_text_value(v)}" for k, v in fields.items())
        line = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.name} "
        line += f"{record.getMessage()} {tail}".rstrip()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(level: str = "info", fmt: str = "text") -> None:
    """Send roomcast's logs to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log would print query strings; ours are token-free but keep it quiet.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


class Throttled:
    """One log line per ``interval`` seconds at most, saying how many events it stands for.

    For events an attacker can cause at will (timeouts, refusals, exhausted descriptors):
    each is counted, but the log cannot be flooded.
    """

    def __init__(self, logger: logging.Logger, event: str, level: int = logging.WARNING,
                 *, interval: float = 10.0) -> None:
        self._logger = logger
        self._event = event
        self._level = level
        self._interval = interval
        self._next = 0.0
        self._pending = 0

    def __call__(self, now: float, **fields: Any) -> None:
        """Count one event at ``now`` (monotonic seconds); log if the interval has passed."""
        self._pending += 1
        if now < self._next:
            return
        log_event(self._logger, self._event, self._level, count=self._pending, **fields)
        self._pending = 0
        self._next = now + self._interval
