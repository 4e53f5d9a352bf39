"""Log lines: one event per line with its fields, the time of each record its own."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest

from roomcast.logs import JsonFormatter, TextFormatter, configure, log_event


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
