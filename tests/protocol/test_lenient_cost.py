"""recover_id's work is bounded: it reads two windows, as a bounded number of tokens.

No timing: the work is counted instead (the slices taken of the frame, the text handed
to the tokenizer, the tokens taken from it), and a frame's middle is shown not to matter.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import islice
from typing import Any, SupportsIndex

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from roomcast.protocol import lenient
from roomcast.protocol.lenient import MAX_TOKENS, WINDOW, recover_id

BIG = 128 * 1024 - 64  # just under the hard close: the largest frame that gets here
PAD = "x" * BIG

#: Frames of every shape that used to cost a walk over each character.
ADVERSARIAL: dict[str, str | bytes] = {
    "one huge string, id last": '{"pad":"' + PAD + '","id":"q"}',
    "one huge string, no end": '{"pad":"' + PAD,
    "deep nesting": '{"pad":' + "[" * BIG + '],"id":"q"}',
    "deep closing": '{"pad":' + "}" * BIG,
    "tiny tokens": '{"pad":[' + "1," * (BIG // 2) + '1],"id":"q"}',
    "tiny members, no id": "{" + '"a":1,' * (BIG // 6) + '"b":2}',
    "escaped keys": "{" + '"\\u0069x":1,' * (BIG // 12) + '"b":2}',
    "many escapes": '{"pad":"' + "\\n" * (BIG // 2) + '","id":"q"}',
    "backslashes": '{"pad":"' + "\\" * BIG,
    "backslashes and quotes": '{"pad":"' + '\\"' * (BIG // 2) + '"}',
    "quotes": '"' * BIG,
    "whitespace": " " * BIG,
    "commas": "{" + "," * BIG + "}",
    "colons": '{"a"' + ":" * BIG + "}",
    "invalid UTF-8, id last": b'{"pad":"' + b"\xff\xfe" * (BIG // 2) + b'","id":"q"}',
    "cut UTF-8, id last": b'{"pad":"' + "\u20ac".encode() * (BIG // 3) + b'","id":"q"}',
}


class _Str(str):
    """A frame that records every slice taken of it."""

    slices: list[int]

    def __getitem__(self, key: SupportsIndex | slice) -> str:
        piece = str.__getitem__(self, key)
        self.slices.append(len(piece))
        return piece


class _Bytes(bytes):
    """The same for a binary frame."""

    slices: list[int]

    def __getitem__(self, key: slice) -> bytes:  # type: ignore[override]
        piece = bytes.__getitem__(self, key)
        self.slices.append(len(piece))
        return piece


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """[window length, tokens taken] for each time recover_id tokenizes."""
    calls: list[list[int]] = []
    real = lenient._tokens

    def tokens(pattern: Any, window: str) -> Iterator[Any]:
        call = [len(window), 0]
        calls.append(call)
        for token in real(pattern, window):
            call[1] += isinstance(token, str)
            yield token

    monkeypatch.setattr(lenient, "_tokens", tokens)
    return calls


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_only_two_windows_are_read_as_a_bounded_number_of_tokens(
        name: str, counted: list[list[int]]) -> None:
    raw = ADVERSARIAL[name]
    frame: _Str | _Bytes = _Bytes(raw) if isinstance(raw, bytes) else _Str(raw)
    frame.slices = []
    recover_id(frame)
    assert len(frame) > 60 * WINDOW
    assert 1 <= len(frame.slices) <= 2 and max(frame.slices) <= WINDOW
    assert 1 <= len(counted) <= 2
    for window, taken in counted:
        assert window <= WINDOW and taken <= MAX_TOKENS


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_adversarial_frames_still_give_their_id(name: str) -> None:
    raw = ADVERSARIAL[name]
    ends_with_id = raw[-9:] in ('"id":"q"}', b'"id":"q"}')
    # Deep nesting and tiny tokens put more than MAX_TOKENS tokens before the id, but
    # the tail window still has it.
    assert recover_id(raw) == ("q" if ends_with_id else None)


def test_the_tokens_stop_at_the_budget() -> None:
    tokens = list(islice(lenient._tokens(lenient._FORWARD, "[" * WINDOW), MAX_TOKENS + 3))
    assert tokens == ["["] * MAX_TOKENS + [lenient._Cut.BUDGET] * 3
    tokens = list(islice(lenient._tokens(lenient._FORWARD, '[1, "a'), 5))
    assert tokens == ["[", "1", ",", lenient._Cut.END, lenient._Cut.END]


json_ish = st.text(st.sampled_from('{}[]:,"\\ idq0x\u00e9\U0001f600'), max_size=40)
heads = st.sampled_from(['{"id": "a", "p": "', '{"p": "', '{"p": [', "{", ""]) | json_ish
tails = st.sampled_from(['", "id": "b"}', '"}', '], "id": "b"}', "}", ""]) | json_ish
middles = st.sampled_from(["", '", "id": "m", "p": "', '"}, "id": "m"}', "]" * 300]) | json_ish


@settings(deadline=None, suppress_health_check=list(HealthCheck))
@given(head=heads, head_more=json_ish, tail=tails, tail_more=json_ish,
       filler=st.sampled_from('x "[{,:\\'), middle=middles, other=middles,
       repeat=st.integers(min_value=1, max_value=1000))
def test_the_middle_of_a_frame_does_not_matter(
        head: str, head_more: str, tail: str, tail_more: str, filler: str, middle: str,
        other: str, repeat: int) -> None:
    """Whatever lies between the first and the last WINDOW characters changes nothing."""
    head_part = (head + head_more + filler * WINDOW)[:WINDOW]
    tail_part = (filler * WINDOW + tail_more + tail)[-WINDOW:]
    one = head_part + middle + tail_part
    two = head_part + other * repeat + tail_part
    assert recover_id(one) == recover_id(two)
    assert recover_id(one.encode()) == recover_id(two.encode())


# ---------------------------------------------------------------- large frames

@pytest.mark.parametrize(("frame", "expected"), [
    ('{"id": "first", "pad": "' + PAD + '"}', "first"),
    ('{"pad": "' + PAD + '", "id": "last"}', "last"),
    ('{"pad": "' + PAD + '", "id": "last"}\n', "last"),
    ('{"pad": "' + PAD + '", "id": "before", "type": "message", "n": [1, {"a": null}]}',
     "before"),
    ('{"type": "message", "data": {"pad": "' + PAD + '"}, "id": "after data"}', "after data"),
    # Nested ids are never the top-level one.
    ('{"pad": "' + PAD + '", "data": {"id": "nested"}}', None),
    ('{"pad": "' + PAD + '", "data": {"id": "nested"}, "id": "top"}', "top"),
    ('{"pad": "' + PAD + '", "id": "top", "data": {"id": "nested"}}', "top"),
    ('{"data": {"id": "nested", "pad": "' + PAD + '"}}', None),
    ('{"data": [{"pad": "' + PAD + '"}, {"id": "nested"}]}', None),
    # An "id" inside a string is text, not a member.
    ('{"pad": "' + PAD + ', \\"id\\": \\"fake\\"}"}', None),
    ('{"pad": "' + PAD + '\\\\", "id": "after backslashes"}', "after backslashes"),
    # Escapes, read backwards.
    ('{"pad": "' + PAD + '", "id": "a\\"b\\\\\\u0041\\ud83d"}', 'a"b\\A\ufffd'),
    ('{"pad": "' + PAD + '", "\\u0069d": "escaped key"}', "escaped key"),
    # Not found: in the middle, not a string, too long, not an object.
    ('{"pad": "' + PAD + '", "id": "middle", "more": "' + PAD + '"}', None),
    ('{"pad": "' + PAD + '", "id": 5}', None),
    ('{"pad": "' + PAD + '", "id": "' + "y" * 129 + '"}', None),
    ('[{"pad": "' + PAD + '", "id": "in an array"}]', None),
    ('{"pad": "' + PAD + '", "id": "cut"', None),
])
def test_recover_id_from_a_large_frame(frame: str, expected: str | None) -> None:
    assert recover_id(frame) == expected
    assert recover_id(frame.encode()) == expected


small_text = st.text(st.characters(codec="utf-16", exclude_categories=["Cs"]), max_size=12)
lone = st.integers(min_value=0xD800, max_value=0xDFFF).map(chr)
ids = st.lists(small_text | lone, max_size=8).map("".join)
values = st.recursive(
    st.none() | st.booleans() | st.integers() | small_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(small_text, inner, max_size=3),
    max_leaves=8,
)
members = st.dictionaries(small_text.filter(lambda k: k != "id"), values, max_size=2)


def _fffd(value: str) -> str:
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)


@settings(deadline=None, suppress_health_check=list(HealthCheck))
@given(message_id=ids, after=members, ascii_only=st.booleans(), last=st.booleans())
def test_the_id_of_a_large_frame_is_read_at_either_end(
        message_id: str, after: dict[str, Any], ascii_only: bool, last: bool) -> None:
    """At the start, or at the end followed by a few members, any id reads back."""
    pad = {"type": "message", "data": {"pad": PAD, "id": "nested"}}
    message = ({**pad, "id": message_id, **after} if last
               else {"id": message_id, **after, **pad})
    frame = json.dumps(message, ensure_ascii=ascii_only)
    # What follows the id, or the id itself, fits in the window (here it always does
    # unless many astral characters are escaped, 12 characters each).
    assume(len(json.dumps({"id": message_id, **after}, ensure_ascii=ascii_only)) < WINDOW)
    # As JSON reads it: escapes of a high and a low surrogate that meet make one
    # character, any other surrogate is U+FFFD.
    expected = _fffd(json.loads(json.dumps(message_id, ensure_ascii=ascii_only)))
    assert recover_id(frame) == expected
    if ascii_only:  # (raw lone surrogates are no UTF-8)
        assert recover_id(frame.encode()) == expected
