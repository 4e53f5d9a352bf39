"""Server envelopes, their encoding, and the frames that carry them."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from roomcast.protocol import messages
from roomcast.protocol.codes import CloseCode, ErrorCode
from roomcast.protocol.frames import PING_FRAME, text_frame

RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def decode(env: dict[str, Any]) -> dict[str, Any]:
    raw = messages.encode(env)
    assert isinstance(raw, bytes)
    out: dict[str, Any] = json.loads(raw)
    return out


def parse_frame(data: bytes) -> Frame:
    """Parse one server frame (unmasked) with websockets' own parser."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        frame: Frame = done.value
        assert at_eof(reader), "bytes left after the frame"
        return frame
    raise AssertionError("incomplete frame")


def at_eof(reader: StreamReader) -> bool:
    """Run websockets' ``at_eof`` generator: True when nothing is left to read."""
    check = reader.at_eof()
    try:
        next(check)
    except StopIteration as done:
        return bool(done.value)
    raise AssertionError("the reader waits for more data after EOF")


def test_now_is_rfc3339_utc_with_milliseconds() -> None:
    assert RFC3339_MS.match(messages.now_rfc3339())


def test_envelope_omits_absent_optional_fields() -> None:
    env = decode(messages.envelope("notification", {"a": 1}))
    assert set(env) == {"id", "type", "data", "timestamp"}
    assert env["type"] == "notification" and env["data"] == {"a": 1}
    assert RFC3339_MS.match(env["timestamp"])
    assert len(env["id"]) == 36


def test_envelope_uses_from_not_from_underscore() -> None:
    env = decode(messages.envelope("message", {}, room="r", from_="c1", to="c2", id="i",
                                   timestamp="t"))
    assert env == {"id": "i", "type": "message", "room": "r", "from": "c1", "to": "c2",
                   "data": {}, "timestamp": "t"}


def test_fresh_ids_differ() -> None:
    assert messages.new_id() != messages.new_id()


def test_error_carries_code_message_temporary_and_the_reply_id() -> None:
    env = decode(messages.error(ErrorCode.RATE_LIMITED, "slow down", reply_to="m7"))
    assert env["type"] == "error" and env["id"] == "m7"
    assert env["data"] == {"code": "rate_limited", "message": "slow down", "temporary": True}
    assert decode(messages.error(ErrorCode.FORBIDDEN, "no", reply_to=None))["data"][
        "temporary"] is False


@pytest.mark.parametrize("reply_to", ["a", "", "x" * 128])
def test_replies_carry_the_client_id_exactly(reply_to: str) -> None:
    # The React client matches replies by id.
    assert decode(messages.ack(reply_to))["id"] == reply_to
    assert decode(messages.pong(reply_to))["id"] == reply_to
    assert decode(messages.error(ErrorCode.INVALID_FIELD, "m", reply_to=reply_to))["id"] == reply_to
    assert decode(messages.envelope("presence", {}, id=reply_to))["id"] == reply_to


def test_ack_and_pong_shapes() -> None:
    ack = decode(messages.ack("a1", message_id="m"))
    assert ack["type"] == "system"
    assert ack["data"] == {"action": "ack", "status": "ok", "message_id": "m"}
    pong = decode(messages.pong("p1"))
    assert pong["type"] == "system" and pong["data"]["action"] == "pong"


def test_welcome_is_the_go_gateways() -> None:
    env = decode(messages.welcome("c1", "u1"))
    assert env["type"] == "system_notification"
    assert env["data"] == {"message": "Connected to WebSocket", "connection_id": "c1",
                           "user_id": "u1"}


def test_room_events() -> None:
    joined = decode(messages.room_joined("group:g", "group", "Group: G", 3))
    assert joined["type"] == "room_joined" and joined["room"] == "group:g"
    assert joined["data"] == {"room": "group:g", "room_id": "group:g", "type": "group",
                              "name": "Group: G", "member_count": 3}
    left = decode(messages.room_left("group:g", "left"))
    assert left["type"] == "room_left" and left["data"]["room"] == "group:g"
    update = decode(messages.room_update("group:g", "member_joined", 2, "c9"))
    assert update["type"] == "room_update"
    assert update["data"] == {"action": "member_joined", "room_id": "group:g",
                              "member_count": 2, "connection_id": "c9"}
    assert "connection_id" not in decode(messages.room_update("r", "members", 5))["data"]


def test_group_membership_change_and_profile_update() -> None:
    env = decode(messages.group_membership_change("u", "g", "G", True))
    assert env["type"] == "group_membership_change"
    assert env["data"]["timestamp"] == env["timestamp"]
    assert {k: env["data"][k] for k in ("user_id", "group_id", "group_name", "joined")} == {
        "user_id": "u", "group_id": "g", "group_name": "G", "joined": True}
    prof = decode(messages.user_profile_update("u", 5, {"bio": "x"}))
    assert prof["type"] == "user_profile_update"
    assert prof["data"]["profile"] == {"bio": "x"} and prof["data"]["character_id"] == 5


def test_encode_is_utf8_json() -> None:
    raw = messages.encode(messages.envelope("message", {"t": "\u00e9\U0001f600"}, id="i"))
    assert json.loads(raw.decode("utf-8"))["data"]["t"] == "\u00e9\U0001f600"


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 70000])
def test_text_frame_is_one_unmasked_final_text_frame(size: int) -> None:
    payload = b"x" * size
    frame = parse_frame(text_frame(payload))
    assert (frame.opcode, frame.fin, frame.data) == (Opcode.TEXT, True, payload)


def test_the_same_frame_bytes_serve_every_recipient() -> None:
    payload = messages.encode(messages.welcome("c", "u"))
    assert text_frame(payload) == text_frame(payload)
    assert parse_frame(text_frame(payload)).data == payload


def test_ping_frame() -> None:
    frame = parse_frame(PING_FRAME)
    assert frame.opcode is Opcode.PING and frame.fin


def test_close_code_reconnect_table() -> None:
    assert CloseCode.GOING_AWAY.reconnect and CloseCode.SLOW_CONSUMER.reconnect
    assert CloseCode.STALE.reconnect and CloseCode.MESSAGE_TOO_BIG.reconnect
    assert int(CloseCode.INSUFFICIENT_STATE) == 3010 and CloseCode.INSUFFICIENT_STATE.reconnect
    assert not CloseCode.POLICY_VIOLATION.reconnect and not CloseCode.KICKED.reconnect
    assert (CloseCode.GOING_AWAY, CloseCode.POLICY_VIOLATION, CloseCode.MESSAGE_TOO_BIG) == (
        1001, 1008, 1009)


def test_temporary_error_codes() -> None:
    temporary = {c for c in ErrorCode if c.temporary}
    assert temporary == {ErrorCode.RATE_LIMITED, ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL}
