"""parse_client_message: bytes in, typed commands or ProtocolError (with a wire code) out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from roomcast.exceptions import ProtocolError
from roomcast.protocol.codes import ErrorCode
from roomcast.protocol.envelope import (
    CLIENT_TYPES,
    KNOWN_TYPES,
    MAX_ID_LENGTH,
    Heartbeat,
    Presence,
    Publish,
    SystemCommand,
    parse_client_message,
)

MAX = 4096
SERVER_ONLY_TYPES = sorted(KNOWN_TYPES - CLIENT_TYPES)


def parse(frame: str | bytes | dict[str, Any], max_size: int = MAX) -> Any:
    raw = json.dumps(frame) if isinstance(frame, dict) else frame
    return parse_client_message(raw, max_size=max_size)


def error_of(frame: str | bytes | dict[str, Any], max_size: int = MAX) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse(frame, max_size)
    return info.value


# -- valid messages ---------------------------------------------------------------


def test_message_to_a_room() -> None:
    cmd = parse({"id": "m1", "type": "message", "room": "group:red", "data": {"text": "hi"}})
    assert cmd == Publish(type="message", id="m1", data={"text": "hi"}, room="group:red")


def test_message_to_a_connection() -> None:
    cmd = parse({"type": "message", "to": "c-1", "data": {"n": 1}})
    assert cmd == Publish(type="message", id=None, data={"n": 1}, to="c-1")


def test_custom_event_is_a_publish() -> None:
    cmd = parse({"id": "e", "type": "custom_event", "room": "user:u", "data": {"k": [1, 2]}})
    assert cmd == Publish(type="custom_event", id="e", data={"k": [1, 2]}, room="user:u")


@pytest.mark.parametrize("data", [None, {}], ids=["null", "empty"])
def test_absent_or_null_data_is_an_empty_object(data: dict[str, Any] | None) -> None:
    frame: dict[str, Any] = {"type": "message", "room": "r"}
    if data is not None:
        frame["data"] = data
    assert parse(frame).data == {}
    assert parse({"type": "message", "room": "r", "data": None}).data == {}


def test_server_owned_fields_are_accepted_when_well_typed() -> None:
    # The server overwrites from and timestamp; a client may still send them.
    for ts in ("2024-01-01T00:00:00Z", 1_700_000_000_000):
        cmd = parse({"type": "presence", "from": "me", "timestamp": ts})
        assert cmd == Presence(id=None, data={})


def test_unknown_fields_are_ignored() -> None:
    assert parse({"id": "h", "type": "heartbeat", "extra": [1], "nested": {"a": 1}}) == Heartbeat(
        id="h"
    )


def test_presence_keeps_its_data() -> None:
    assert parse({"id": "p", "type": "presence", "data": {"status": "away"}}) == Presence(
        id="p", data={"status": "away"}
    )


def test_system_ping_needs_no_room() -> None:
    # The React client's heartbeat.
    assert parse({"type": "system", "id": "hb", "data": {"action": "ping"}}) == SystemCommand(
        id="hb", action="ping"
    )


@pytest.mark.parametrize("action", ["join", "leave", "members"])
def test_system_room_actions_take_the_room_from_data(action: str) -> None:
    cmd = parse({"type": "system", "id": "j", "data": {"action": action, "room": "group:a"}})
    assert cmd == SystemCommand(id="j", action=action, room="group:a")  # type: ignore[arg-type]


def test_system_room_falls_back_to_the_envelope_room() -> None:
    cmd = parse({"type": "system", "room": "group:b", "data": {"action": "join"}})
    assert cmd == SystemCommand(id=None, action="join", room="group:b")


def test_system_data_room_wins_over_the_envelope_room() -> None:
    frame = {"type": "system", "room": "group:b", "data": {"action": "leave", "room": "group:c"}}
    cmd = parse(frame)
    assert cmd == SystemCommand(id=None, action="leave", room="group:c")


def test_str_and_bytes_frames_parse_alike() -> None:
    frame = '{"type":"message","room":"r","data":{"t":"\u00e9"}}'
    assert parse(frame) == parse(frame.encode())


def test_a_frame_of_exactly_max_size_is_accepted() -> None:
    frame = json.dumps({"type": "presence", "data": {"pad": ""}})
    pad = MAX - len(frame)
    frame = json.dumps({"type": "presence", "data": {"pad": "x" * pad}})
    assert len(frame.encode()) == MAX
    assert isinstance(parse(frame), Presence)


# -- invalid_json / not_an_object ------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [b"", b"   ", b"{", b"nope", b"{'type': 'presence'}", b'{"type": "presence"} x',
     b"\xff\xfe{}", b'{"type": NaN}', '"\ud800"', b'{"a":1,}'],
)
def test_invalid_json(frame: str | bytes) -> None:
    err = error_of(frame)
    assert err.code is ErrorCode.INVALID_JSON
    assert err.message_id is None
    assert err.message


@pytest.mark.parametrize(
    "frame", [b"[]", b"1", b'"message"', b"null", b"true", b'[{"type": "presence", "id": "x"}]']
)
def test_not_an_object(frame: bytes) -> None:
    err = error_of(frame)
    assert err.code is ErrorCode.NOT_AN_OBJECT
    assert err.message_id is None


# -- unknown_type / forbidden -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["bogus", "", "MESSAGE", "message ", "x" * 1000])
def test_unknown_type(kind: str) -> None:
    err = error_of({"id": "u1", "type": kind})
    assert err.code is ErrorCode.UNKNOWN_TYPE
    assert err.message_id == "u1"
    assert len(err.message) < 200  # the echoed type is truncated


@pytest.mark.parametrize("kind", SERVER_ONLY_TYPES)
def test_server_only_types_are_forbidden(kind: str) -> None:
    err = error_of({"id": "f1", "type": kind, "room": "r", "data": {}})
    assert err.code is ErrorCode.FORBIDDEN
    assert err.message_id == "f1"


def test_server_only_types_are_the_ones_compat_lists() -> None:
    assert set(SERVER_ONLY_TYPES) == {
        "user_profile_update", "group_membership_change", "system_notification",
        "notification", "room_update", "backend_status", "critical_alert",
        "service_recovery", "room_joined", "room_left", "error",
    }


# -- invalid_field ------------------------------------------------------------------


WRONG_FIELD_TYPES: list[tuple[str, dict[str, Any]]] = [
    ("type missing", {"id": "x"}),
    ("type int", {"id": "x", "type": 1}),
    ("type null", {"id": "x", "type": None}),
    ("type list", {"id": "x", "type": ["message"]}),
    ("room int", {"id": "x", "type": "message", "room": 5}),
    ("room empty", {"id": "x", "type": "message", "room": ""}),
    ("room too long", {"id": "x", "type": "message", "room": "r" * 257}),
    ("room object", {"id": "x", "type": "message", "room": {"id": "r"}}),
    ("to int", {"id": "x", "type": "message", "to": 7}),
    ("to empty", {"id": "x", "type": "message", "to": ""}),
    ("from int", {"id": "x", "type": "presence", "from": 1}),
    ("timestamp float", {"id": "x", "type": "presence", "timestamp": 1.5}),
    ("timestamp bool", {"id": "x", "type": "presence", "timestamp": True}),
    ("timestamp object", {"id": "x", "type": "presence", "timestamp": {}}),
    ("data list", {"id": "x", "type": "message", "room": "r", "data": [1]}),
    ("data string", {"id": "x", "type": "message", "room": "r", "data": "hi"}),
    ("data int", {"id": "x", "type": "presence", "data": 3}),
    ("data bool", {"id": "x", "type": "heartbeat", "data": False}),
    ("message without room or to", {"id": "x", "type": "message", "data": {}}),
    ("message with room and to", {"id": "x", "type": "message", "room": "r", "to": "c"}),
    ("custom_event without room or to", {"id": "x", "type": "custom_event"}),
    ("custom_event with both", {"id": "x", "type": "custom_event", "room": "r", "to": "c"}),
    ("system without data", {"id": "x", "type": "system"}),
    ("system without action", {"id": "x", "type": "system", "data": {"room": "r"}}),
    ("system unknown action", {"id": "x", "type": "system", "data": {"action": "explode"}}),
    ("system action int", {"id": "x", "type": "system", "data": {"action": 1}}),
    ("system action list", {"id": "x", "type": "system", "data": {"action": ["ping"]}}),
    ("system action object", {"id": "x", "type": "system", "data": {"action": {"a": 1}}}),
    ("system join without room", {"id": "x", "type": "system", "data": {"action": "join"}}),
    ("system leave without room", {"id": "x", "type": "system", "data": {"action": "leave"}}),
    ("system members without room", {"id": "x", "type": "system", "data": {"action": "members"}}),
    ("system join room int", {"id": "x", "type": "system", "data": {"action": "join", "room": 3}}),
    ("system join room empty", {"id": "x", "type": "system",
                                "data": {"action": "join", "room": ""}}),
    ("system join room null", {"id": "x", "type": "system", "room": "r",
                               "data": {"action": "join", "room": None}}),
]


@pytest.mark.parametrize("frame", [f for _, f in WRONG_FIELD_TYPES],
                         ids=[name for name, _ in WRONG_FIELD_TYPES])
def test_invalid_field(frame: dict[str, Any]) -> None:
    err = error_of(frame)
    assert err.code is ErrorCode.INVALID_FIELD
    assert err.message_id == "x"
    assert err.message


@pytest.mark.parametrize("bad_id", [1, 1.5, True, None, ["a"], {"a": 1}, "i" * (MAX_ID_LENGTH + 1)])
def test_an_id_that_is_not_a_short_string_is_not_carried(bad_id: object) -> None:
    err = error_of({"id": bad_id, "type": "message", "data": {}})
    assert err.code is ErrorCode.INVALID_FIELD
    assert err.message_id is None


def test_an_id_of_max_length_is_carried() -> None:
    long_id = "i" * MAX_ID_LENGTH
    assert error_of({"id": long_id, "type": "nope"}).message_id == long_id
    assert parse({"id": long_id, "type": "heartbeat"}) == Heartbeat(id=long_id)


def test_the_id_is_carried_into_every_error_after_json() -> None:
    cases = {
        ErrorCode.UNKNOWN_TYPE: {"id": "k", "type": "nope"},
        ErrorCode.FORBIDDEN: {"id": "k", "type": "error"},
        ErrorCode.INVALID_FIELD: {"id": "k", "type": "message"},
    }
    for code, frame in cases.items():
        err = error_of(frame)
        assert (err.code, err.message_id) == (code, "k")


# -- too_large ------------------------------------------------------------------


def test_too_large_bytes() -> None:
    err = error_of(b'{"type":"presence","data":{"p":"' + b"x" * MAX + b'"}}')
    assert err.code is ErrorCode.TOO_LARGE
    assert err.message_id is None


def test_too_large_is_checked_before_json() -> None:
    assert error_of(b"\x00" * (MAX + 1)).code is ErrorCode.TOO_LARGE


def test_too_large_counts_utf8_bytes_not_characters() -> None:
    # aiohttp hands text frames over as str; the limit is in bytes (64 KiB).
    frame = json.dumps({"type": "presence", "data": {"p": "\u00e9" * (MAX // 2)}},
                       ensure_ascii=False)
    assert len(frame) < MAX < len(frame.encode())
    assert error_of(frame).code is ErrorCode.TOO_LARGE


def test_error_codes_keep_their_temporary_flag() -> None:
    for code in (ErrorCode.INVALID_JSON, ErrorCode.INVALID_FIELD, ErrorCode.TOO_LARGE):
        assert ProtocolError(code, "m").temporary is False
    assert ProtocolError(ErrorCode.RATE_LIMITED, "m").temporary is True


def test_integers_beyond_64_bits_are_read_as_floats() -> None:
    """As Go reads every JSON number (float64): a value, never an error or a wrap."""
    frame = '{"type": "message", "room": "group:a", "data": {"big": 1180591620717411303424,' \
            ' "low": -9223372036854775809, "top": 18446744073709551615}}'
    cmd = parse_client_message(frame, max_size=1 << 20)
    assert isinstance(cmd, Publish)
    assert cmd.data == {"big": 1.1805916207174113e21, "low": -9.223372036854776e18,
                        "top": 18446744073709551615}
    assert isinstance(cmd.data["big"], float) and isinstance(cmd.data["top"], int)
