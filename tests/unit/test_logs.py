"""Log lines: one event per line with its fields, the time of each record its own."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator

import orjson
import pytest

from roomcast.logs import (
    JsonFormatter,
    TextFormatter,
    Throttled,
    TurnHandler,
    configure,
    log_event,
)


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    out = io.StringIO()
    configure("info", "json")
    root.handlers[0].setStream(out)  # type: ignore[attr-defined]
    yield out
    root.handlers[:] = saved
    root.setLevel(level)


def test_an_event_is_one_json_line_with_its_fields(stream: io.StringIO) -> None:
    log = logging.getLogger("roomcast.test")
    log_event(log, "connect", conn="c1", peer="127.0.0.1", rooms=2)
    log_event(log, "hidden", logging.DEBUG, conn="c2")
    try:
        raise ZeroDivisionError("boom")
    except ZeroDivisionError:
        log_event(log, "failed", logging.ERROR, exc_info=True, conn="c1")
    first, second = (orjson.loads(line) for line in stream.getvalue().splitlines())
    assert first["event"] == "connect" and first["level"] == "info"
    assert (first["conn"], first["peer"], first["rooms"]) == ("c1", "127.0.0.1", 2)
    assert first["logger"] == "roomcast.test" and first["ts"].endswith("Z")
    assert second["event"] == "failed" and "ZeroDivisionError: boom" in second["exc"]


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()])
def test_each_record_gets_its_own_second(formatter: logging.Formatter) -> None:
    times = []
    for created in (1_000_000.2, 1_000_000.7, 1_000_061.1, 1_000_000.3):
        record = logging.makeLogRecord({"msg": "tick", "created": created, "msecs": 0})
        times.append(formatter.format(record).split(" ")[0])
    assert times[0] == times[1] == times[3] != times[2]


def test_text_values_that_could_forge_a_field_are_quoted() -> None:
    record = logging.makeLogRecord({"msg": "connect", "fields": {
        "user": 'a b="c"', "peer": "1.2.3.4", "odd": "x\ny"}})
    line = TextFormatter().format(record)
    assert 'user="a b=\\"c\\""' in line and "peer=1.2.3.4" in line and 'odd="x\\ny"' in line
    assert "\n" not in line


class _Writes(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


async def test_lines_of_one_loop_turn_are_written_together_and_errors_at_once() -> None:
    out = _Writes()
    handler = TurnHandler(out)
    handler.setFormatter(TextFormatter())
    log = logging.getLogger("roomcast.test.turn")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)
    try:
        log_event(log, "one")
        log_event(log, "two")
        assert out.getvalue() == ""  # not yet: the turn is not over
        written = asyncio.Event()
        asyncio.get_running_loop().call_soon(written.set)  # runs after the handler's write
        await written.wait()
        assert [line.split()[-1] for line in out.getvalue().splitlines()] == ["one", "two"]
        assert out.writes == 1
        log_event(log, "three")
        log_event(log, "bad", logging.ERROR)  # written at once, after what was pending
        assert [line.split()[-1] for line in out.getvalue().splitlines()] == \
            ["one", "two", "three", "bad"]
    finally:
        log.removeHandler(handler)
        log.propagate = True


def test_outside_a_loop_a_line_is_written_at_once() -> None:
    out = _Writes()
    handler = TurnHandler(out)
    handler.setFormatter(TextFormatter())
    handler.handle(logging.makeLogRecord({"msg": "alone", "levelno": logging.INFO}))
    assert out.getvalue().split()[-1] == "alone"


class Recorded(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.counts: list[int] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.counts.append(record.fields["count"])  # type: ignore[attr-defined]


@pytest.mark.parametrize(("burst", "expected"), [
    (1, [1, 5]),           # one line per window; the next counts the four left out
    (3, [1, 1, 1, 3]),  # three lines per window
])
def test_throttled_lines_per_window_count_what_they_stand_for(
        burst: int, expected: list[int]) -> None:
    logger = logging.getLogger("roomcast.test.throttled")
    recorded = Recorded()
    logger.addHandler(recorded)
    logger.propagate = False
    try:
        throttled = Throttled(logger, "event", interval=10.0, burst=burst)
        for now in (0.0, 1.0, 2.0, 3.0, 9.9):  # one window
            throttled(now)
        throttled(10.0)  # the next
        assert recorded.counts == expected
    finally:
        logger.removeHandler(recorded)
        logger.propagate = True
