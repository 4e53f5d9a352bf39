"""The Redis pub/sub wire format, bytes in and objects (or errors) out: no Redis."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from roomcast.broker import redis_wire as wire
from roomcast.broker.base import (
    ControlCommand,
    Disconnect,
    MembershipChanged,
    RoomsChanged,
    Target,
    ToAll,
    ToConnection,
    ToRoom,
    ToUser,
)
from roomcast.types import ConnId, GroupId, RoomId, UserId

PREFIX = wire.payload_prefix("server-1")


def test_wrap_embeds_the_envelope_bytes_unchanged() -> None:
    envelope = b'{"type":"message","room":"group:1","data":{"t":"\\u00e9"}}'
    payload = wire.wrap(PREFIX, envelope, exclude="conn-1")
    assert payload.startswith(PREFIX)
    assert envelope in payload  # byte concatenation, not re-encoding
    obj = orjson.loads(payload)
    assert obj["server_id"] == "server-1"
    assert obj["message"] == orjson.loads(envelope)
    assert obj["exclude"] == "conn-1"
    assert obj["timestamp"].endswith("Z")
    assert "exclude" not in orjson.loads(wire.wrap(PREFIX, envelope))


def test_server_id_is_json_escaped_in_the_prefix() -> None:
    prefix = wire.payload_prefix('odd"id\\')
    assert orjson.loads(wire.wrap(prefix, b"{}"))["server_id"] == 'odd"id\\'


@pytest.mark.parametrize(
    ("target", "envelope", "channel"),
    [
        (ToAll(), {"type": "m"}, "websocket:messages"),
        (ToConnection(ConnId("c")), {"type": "m", "to": "c"}, "websocket:messages"),
        (ToUser(UserId("u")), {"type": "m", "data": {"user_id": "u"}}, "websocket:users"),
        (ToRoom(RoomId("r")), {"type": "m", "room": "r"}, "websocket:rooms"),
    ],
)
def test_outgoing_keeps_a_matching_payload_as_is(
    target: Target, envelope: dict[str, Any], channel: str
) -> None:
    payload = orjson.dumps(envelope)
    assert wire.outgoing(target, payload) == (channel, payload)
    # ...and the receiving side derives the same target from channel and envelope.
    assert wire.parse(channel, wire.wrap(PREFIX, payload)).target == target


def test_outgoing_sharded_rooms_use_room_channels() -> None:
    payload = orjson.dumps({"type": "m", "room": "group:1"})
    channel, _ = wire.outgoing(ToRoom(RoomId("group:1")), payload, sharded=True)
    assert channel == "roomcast:room:group:1"
    assert wire.parse(channel, wire.wrap(PREFIX, payload)).target == ToRoom(RoomId("group:1"))
    with pytest.raises(wire.MalformedPayload, match="published on"):
        wire.parse("roomcast:room:group:2", wire.wrap(PREFIX, payload))


@pytest.mark.parametrize(
    ("target", "envelope", "expected"),
    [
        (ToConnection(ConnId("c")), {"type": "m"}, {"type": "m", "to": "c"}),
        (ToRoom(RoomId("r")), {"type": "m", "room": None}, {"type": "m", "room": "r"}),
        (ToUser(UserId("u")), {"type": "m"}, {"type": "m", "data": {"user_id": "u"}}),
        (ToUser(UserId("u")), {"type": "m", "data": {"k": 1}},
         {"type": "m", "data": {"k": 1, "user_id": "u"}}),
    ],
)
def test_outgoing_fills_in_missing_routing_fields(
    target: Target, envelope: dict[str, Any], expected: dict[str, Any]
) -> None:
    _, remote = wire.outgoing(target, orjson.dumps(envelope))
    assert orjson.loads(remote) == expected


@pytest.mark.parametrize(
    ("target", "payload"),
    [
        (ToConnection(ConnId("c")), b'{"type":"m","to":"other"}'),
        (ToRoom(RoomId("r")), b'{"type":"m","room":"other"}'),
        (ToUser(UserId("u")), b'{"type":"m","data":{"user_id":"other"}}'),
        (ToUser(UserId("u")), b'{"type":"m","data":[]}'),
        (ToAll(), b'{"type":"m","to":"c"}'),
        (ToAll(), b"[]"),
        (ToAll(), b"{nope"),
    ],
)
def test_outgoing_refuses_payloads_that_would_misroute(target: Target, payload: bytes) -> None:
    with pytest.raises(ValueError):
        wire.outgoing(target, payload)


def test_parse_reads_exclude_only_as_a_string() -> None:
    payload = b'{"server_id":"go","message":{"type":"m","room":"r"},"exclude":7}'
    assert wire.parse("websocket:rooms", payload).target == ToRoom(RoomId("r"))


def test_parse_rejects_unknown_channels() -> None:
    with pytest.raises(wire.MalformedPayload, match="unexpected channel"):
        wire.parse("elsewhere", wire.wrap(PREFIX, b'{"type":"m"}'))


@pytest.mark.parametrize(
    "command",
    [
        MembershipChanged(UserId("u"), GroupId("g"), "Équipe 🚀", True),
        Disconnect(user_id=UserId("u")),
        Disconnect(conn_id=ConnId("c"), code=3008, reason="slow"),
        RoomsChanged("server-1", (RoomId("group:a"), RoomId("group:Équipe 🚀"))),
        RoomsChanged("server-1", ()),
    ],
)
def test_control_round_trip(command: ControlCommand) -> None:
    assert wire.parse_control(wire.encode_control(PREFIX, command)) == ("server-1", command)


@pytest.mark.parametrize(
    "fields",
    [
        {},  # neither field
        {"server_id": "s"},  # no rooms
        {"server_id": "s", "rooms": "group:a"},  # a string, not a list
        {"server_id": "s", "rooms": [1, 2]},  # not room names
        {"server_id": None, "rooms": ["group:a"]},
    ],
)
def test_a_malformed_rooms_changed_is_refused(fields: dict[str, Any]) -> None:
    body = orjson.dumps({"server_id": "server-2", "message": {"kind": "rooms_changed", **fields}})
    with pytest.raises(wire.MalformedPayload):
        wire.parse_control(body)


# What orjson can encode: 64-bit integers, no lone surrogates.
texts = st.text(st.characters(codec="utf-8"), max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
payload_like = st.fixed_dictionaries(
    {},
    optional={
        "server_id": json_values | texts,
        "message": st.fixed_dictionaries(
            {}, optional={"type": json_values | texts, "to": json_values,
                          "room": json_values, "data": json_values}
        ) | json_values,
        "exclude": json_values,
        "timestamp": json_values,
    },
)


@given(
    channel=st.sampled_from([*wire.CHANNELS, "roomcast:room:r", "other"]),
    data=st.binary(max_size=64) | payload_like.map(orjson.dumps),
)
def test_parse_fails_only_with_malformed_payload(channel: str, data: bytes) -> None:
    try:
        if channel == wire.CONTROL:
            wire.parse_control(data)
        else:
            incoming = wire.parse(channel, data)
            assert isinstance(orjson.loads(incoming.envelope), dict)
    except wire.MalformedPayload:
        pass
