"""Lone surrogates and id recovery: bytes in, objects or ids out (no sockets)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roomcast.exceptions import ProtocolError
from roomcast.protocol.codes import ErrorCode
from roomcast.protocol.envelope import Publish, parse_client_message
from roomcast.protocol.lenient import recover_id, replace_lone_surrogates

MAX = 4096


def parse(frame: str | bytes) -> Any:
    return parse_client_message(frame, max_size=MAX)


def error_of(frame: str | bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as exc:
        parse(frame)
    return exc.value


@pytest.mark.parametrize(("text", "fixed"), [
    (r'"\ud83d"', r'"\ufffd"'),
    (r'"\uDE00x"', r'"\ufffdx"'),
    (r'"\ud83d\ude00"', r'"\ud83d\ude00"'),  # a pair stays
    (r'"\ud83d\ud83d\ude00"', r'"\ufffd\ud83d\ude00"'),  # a high one, then a pair
    (r'"\\ud83d"', r'"\\ud83d"'),  # an escaped backslash, then letters
    (r'"\\\ud83d"', r'"\\\ufffd"'),  # an escaped backslash, then an escape
    (r'"no escapes"', r'"no escapes"'),
])
def test_replace_lone_surrogates(text: str, fixed: str) -> None:
    assert replace_lone_surrogates(text) == fixed


def test_a_cut_emoji_parses_as_u_fffd_and_keeps_its_id() -> None:
    frame = r'{"id":"c1","type":"message","room":"group:g","data":{"text":"hi \ud83d"}}'
    command = parse(frame)
    assert isinstance(command, Publish)
    assert command.id == "c1" and command.data == {"text": "hi \ufffd"}
    assert parse(frame.encode()) == command


def test_other_invalid_json_stays_invalid_with_the_id_recovered() -> None:
    err = error_of(r'{"id":"c2","type":"presence","data":{"x":"\ud83d"}')  # unterminated
    assert (err.code, err.message_id) == (ErrorCode.INVALID_JSON, "c2")
    err = error_of(b'{"id": "c3", "type": "presence", "data": {"x": NaN}}')
    assert (err.code, err.message_id) == (ErrorCode.INVALID_JSON, "c3")


def test_a_too_large_frame_gets_its_id_without_being_parsed_whole() -> None:
    err = error_of('{"id": "big", "type": "message", "data": {"x": "' + "a" * MAX + '"')
    assert (err.code, err.message_id) == (ErrorCode.TOO_LARGE, "big")


@pytest.mark.parametrize(("frame", "expected"), [
    ('{"id": "a"', "a"),
    ('{"type": "x", "data": {"id": "nested", "list": [{"id": "deeper"}]}, "id": "top", ',
     "top"),
    ('{"data": "has \\"id\\": \\"fake\\"", "id": "real"}', "real"),
    ('  {"id": "esc\\u0041\\n"', "escA\n"),
    ('{"id": "\\ud83d\\ude00\\ud83d"', "\U0001f600\ufffd"),
    ('{"id": 5, "type": "x"}', None),
    ('{"type": "x"}', None),
    ('{"type": "x", "data": {"id": "nested"', None),
    ('{"type": "x", "data": {"id": "nested"}', None),  # read whole: no trust in the end
    ('{"type": "x", "data": {"id": "nested"}}', None),
    ('{"type": "x", "id": "middle", "data": {"id": "nested"}}', "middle"),
    ('{"type": "x", "data": {"id": "nested"}, "id": "end"}', "end"),
    ('{"\\u0069d": "escaped key"}', "escaped key"),
    ('[{"id": "in an array"}]', None),
    ('{"id": "' + "x" * 129 + '"}', None),
    ('{"id": "unterminated', None),
    ('{"id": "bad escape \\q"}', None),
    ("", None),
    ("\xff\xfe", None),
])
def test_recover_id(frame: str, expected: str | None) -> None:
    assert recover_id(frame) == expected
    assert recover_id(frame.encode("utf-8", "surrogatepass")) == expected


strings = st.text(st.characters(codec="utf-16", exclude_categories=["Cs"]), max_size=12)
values = st.recursive(
    st.none() | st.booleans() | st.integers() | strings,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(strings, inner, max_size=3),
    max_leaves=8,
)


@given(message_id=strings, before=st.dictionaries(strings.filter(lambda k: k != "id"), values,
                                                  max_size=3),
       cut=st.integers(min_value=0, max_value=40))
def test_the_id_is_recovered_from_any_truncation_after_it(
        message_id: str, before: dict[str, Any], cut: int) -> None:
    text = json.dumps({**before, "id": message_id, "type": "message", "data": {"x": [1, 2]}})
    end = text.index('"type"', text.index('"id"'))
    assert recover_id(text[: end + cut]) == message_id


@given(st.text(max_size=200) | st.binary(max_size=200))
def test_recover_id_never_raises(frame: str | bytes) -> None:
    result = recover_id(frame)
    assert result is None or len(result) <= 128


lone = st.integers(min_value=0xD800, max_value=0xDFFF).map(chr)
cut_strings = st.lists(strings | lone, max_size=6).map("".join)


@given(st.dictionaries(strings, cut_strings, max_size=4), strings)
def test_any_lone_surrogate_reads_as_u_fffd(data: dict[str, str], message_id: str) -> None:
    """What JSON.stringify writes for strings with lone surrogates, read as Go reads it."""
    frame = json.dumps({"id": message_id, "type": "message", "room": "group:g",
                        "data": data})  # lone surrogates become \udXXX escapes
    command = parse(frame)
    expected = {k: "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in v)
                for k, v in data.items()}
    # Pairs the random text happened to form are decoded by JSON too.
    decoded = json.loads(frame)["data"]
    assert command.data == {k: _fffd(v) for k, v in decoded.items()}
    assert set(command.data) == set(expected)
    assert command.id == message_id


def _fffd(value: str) -> str:
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
