"""Hypothesis: parse_client_message never raises anything but ProtocolError."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from roomcast.exceptions import ProtocolError
from roomcast.protocol.codes import ErrorCode
from roomcast.protocol.envelope import (
    KNOWN_TYPES,
    MAX_ID_LENGTH,
    Heartbeat,
    Presence,
    Publish,
    SystemCommand,
    parse_client_message,
)

MAX = 2048
COMMANDS = (Publish, SystemCommand, Presence, Heartbeat)

#: Integers a JSON number keeps exactly (larger ones are read as floats, see
#: test_envelope's test_integers_beyond_64_bits_are_read_as_floats).
exact_integers = st.integers(min_value=-(2**63), max_value=2**64 - 1)

json_values = st.recursive(
    st.none() | st.booleans() | exact_integers
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                               max_size=4),
    max_leaves=12,
)
types = st.sampled_from(sorted(KNOWN_TYPES)) | st.text(max_size=12)
actions = st.sampled_from(["ping", "join", "leave", "members"]) | json_values
datas = json_values | st.fixed_dictionaries({}, optional={"action": actions, "room": json_values})
# Envelope-shaped objects reach the field checks far more often than random JSON does.
envelopes = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=MAX_ID_LENGTH + 2) | json_values,
        "type": types | json_values,
        "room": st.text(max_size=10) | json_values,
        "to": st.text(max_size=10) | json_values,
        "from": json_values,
        "data": datas,
        "timestamp": st.text(max_size=10) | st.integers() | json_values,
    },
)

# system frames: the action and room checks run on arbitrary JSON values.
systems = st.fixed_dictionaries(
    {"type": st.just("system"), "data": st.fixed_dictionaries(
        {}, optional={"action": actions, "room": st.text(max_size=4) | json_values})},
    optional={"id": st.text(max_size=8), "room": st.text(max_size=4) | json_values},
)


def check(frame: str | bytes) -> None:
    """Parse; the outcome is a command or a ProtocolError with a wire code."""
    try:
        result = parse_client_message(frame, max_size=MAX)
    except ProtocolError as exc:
        assert isinstance(exc.code, ErrorCode)
        assert isinstance(exc.message, str) and exc.message
        assert exc.message_id is None or (
            isinstance(exc.message_id, str) and len(exc.message_id) <= MAX_ID_LENGTH
        )
    else:
        assert isinstance(result, COMMANDS)


@given(st.binary(max_size=MAX + 64))
def test_arbitrary_bytes(frame: bytes) -> None:
    check(frame)


@given(st.text(max_size=MAX + 64))
def test_arbitrary_text(frame: str) -> None:
    check(frame)


@given(json_values)
def test_arbitrary_json(value: Any) -> None:
    check(json.dumps(value))


@settings(max_examples=400)
@given(envelopes)
def test_envelope_shaped_json(value: dict[str, Any]) -> None:
    frame = json.dumps(value)
    check(frame)
    check(frame.encode())


@given(systems)
def test_system_frames(value: dict[str, Any]) -> None:
    check(json.dumps(value))


@given(envelopes)
def test_the_id_is_carried_whenever_it_is_a_short_string(value: dict[str, Any]) -> None:
    try:
        parse_client_message(json.dumps(value), max_size=1 << 20)
    except ProtocolError as exc:
        raw_id = value.get("id")
        if isinstance(raw_id, str) and len(raw_id) <= MAX_ID_LENGTH:
            assert exc.message_id == raw_id
        else:
            assert exc.message_id is None


@given(
    kind=st.sampled_from(["message", "custom_event"]),
    message_id=st.none() | st.text(max_size=MAX_ID_LENGTH),
    room=st.text(min_size=1, max_size=256),
    data=st.dictionaries(st.text(max_size=8), json_values, max_size=4),
)
def test_valid_publishes_round_trip(
    kind: str, message_id: str | None, room: str, data: dict[str, Any]
) -> None:
    frame: dict[str, Any] = {"type": kind, "room": room, "data": data}
    if message_id is not None:
        frame["id"] = message_id
    cmd = parse_client_message(json.dumps(frame), max_size=1 << 20)
    assert cmd == Publish(type=kind, id=message_id, data=data, room=room)
