"""An oversized frame's error still carries the client's id (the React client waits for it)."""

from __future__ import annotations

import json

import pytest

from roomcast.exceptions import ProtocolError
from roomcast.protocol.codes import ErrorCode
from roomcast.protocol.envelope import parse_client_message


def test_too_large_error_carries_the_id() -> None:
    frame = json.dumps(
        {"type": "message", "id": "big-1", "room": "group:a", "data": {"pad": "x" * 2000}}
    )
    with pytest.raises(ProtocolError) as info:
        parse_client_message(frame, max_size=1000)
    assert info.value.code is ErrorCode.TOO_LARGE
    assert info.value.message_id == "big-1"


@pytest.mark.parametrize(
    "frame", ["x" * 2000, json.dumps(["a"] * 500), json.dumps({"id": 5, "p": "x" * 2000})]
)
def test_too_large_without_a_usable_id(frame: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_client_message(frame, max_size=1000)
    assert info.value.code is ErrorCode.TOO_LARGE
    assert info.value.message_id is None
