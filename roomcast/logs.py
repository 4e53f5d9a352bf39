"""Structured logging: one event per line, as text or JSON."""

from __future__ import annotations

import asyncio
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
        # The record made here, not by logger.log: that walks the stack for the caller's
        # file and line on every call, which no format of ours prints (a connect storm
        # logs a line per connection).
        record = logger.makeRecord(logger.name, level, "", 0, event, (),
                                   sys.exc_info() if exc_info else None,
                                   extra={"fields": fields})
        logger.handle(record)


class _SecondsFormatter(logging.Formatter):
    """A formatter whose time of day is formatted once per second, not per line."""

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._stamp = ""

    def _time(self, record: logging.LogRecord, datefmt: str) -> str:
        second = int(record.created)
        if second != self._second:
            self._stamp, self._second = self.formatTime(record, datefmt), second
        return self._stamp


class JsonFormatter(_SecondsFormatter):
    """``{"ts", "level", "logger", "event", ...fields}`` per line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": self._time(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
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
    if text and text.isprintable() and " " not in text and '"' not in text and "=" not in text:
        return text
    return orjson.dumps(text).decode()


class TextFormatter(_SecondsFormatter):
    """``time level logger event key=value ...`` per line."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", {})
        tail = " ".join(f"{k}={_text_value(v)}" for k, v in fields.items())
        line = f"{self._time(record, '%H:%M:%S')} {record.levelname:<7} {record.name} "
        line += f"{record.getMessage()} {tail}".rstrip()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class TurnHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes the lines of one event-loop turn together (a connect storm logs a line per
    connection: one write and flush per turn instead of per line).

    Errors, and lines logged outside a running loop, are written at once (after what
    is pending, so the order holds); what is pending is written at exit.
    """

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._pending: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        first = not self._pending
        self._pending.append(line)
        if record.levelno >= logging.ERROR:
            self.write_pending()
        elif first:
            try:
                asyncio.get_running_loop().call_soon(self.write_pending)
            except RuntimeError:  # no loop in this thread
                self.write_pending()

    def write_pending(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            lines, self._pending = self._pending, []
            if not lines:
                return
            try:
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()
            except Exception:
                self.handleError(logging.makeLogRecord({"msg": lines[0]}))

    def flush(self) -> None:
        self.write_pending()
        super().flush()


def configure(level: str = "info", fmt: str = "text") -> None:
    """Send roomcast's logs to stderr in the chosen format."""
    # Per record, logging looks up the thread, process and multiprocessing names,
    # which no format of ours prints.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = TurnHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log would print query strings; ours are token-free but keep it quiet.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


class Throttled:
    """At most ``burst`` log lines per ``interval`` seconds, each saying how many events
    it stands for.

    For events an attacker can cause at will (timeouts, refusals, exhausted descriptors):
    each is counted, but the log cannot be flooded. A burst above 1 keeps the lines of a
    few events apart (one client's refusals) while a flood still costs a line or so.
    """

    def __init__(self, logger: logging.Logger, event: str, level: int = logging.WARNING,
                 *, interval: float = 10.0, burst: int = 1) -> None:
        self._logger = logger
        self._event = event
        self._level = level
        self._interval = interval
        self._burst = burst
        self._left = 0
        self._next = 0.0
        self._pending = 0

    def __call__(self, now: float, **fields: Any) -> None:
        """Count one event at ``now`` (monotonic seconds); log it if this interval has
        lines left (a new interval starts at the first event after the last one ended)."""
        self._pending += 1
        if now >= self._next:
            self._next = now + self._interval
            self._left = self._burst
        if self._left <= 0:
            return
        self._left -= 1
        log_event(self._logger, self._event, self._level, count=self._pending, **fields)
        self._pending = 0
