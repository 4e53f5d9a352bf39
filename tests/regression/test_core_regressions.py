"""Bugs found in the gateway core, one test each, so they stay fixed."""

from __future__ import annotations

import json

import pytest

from roomcast.exceptions import ProtocolError
from roomcast.protocol.codes import ErrorCode
from roomcast.protocol.envelope import parse_client_message
from tests.helpers.gateway import GatewayProcess
from tests.helpers.ws import connect_peer

MAX = 65536  # the gateway's default ROOMCAST_MAX_MESSAGE_SIZE


# A `system` frame whose data.action was a list or object raised TypeError (unhashable)
# out of parse_client_message; the read loop turned it into an internal error and the
# connection was dropped.
@pytest.mark.parametrize("action", [["ping"], {"a": 1}])
def test_unhashable_system_action_is_invalid_field(action: object) -> None:
    frame = json.dumps({"id": "r1", "type": "system", "data": {"action": action}})
    with pytest.raises(ProtocolError) as info:
        parse_client_message(frame, max_size=MAX)
    assert (info.value.code, info.value.message_id) == (ErrorCode.INVALID_FIELD, "r1")


async def test_unhashable_system_action_keeps_the_connection(gateway: GatewayProcess) -> None:
    peer = await connect_peer(gateway, "reg-action-user")
    try:
        reply = await peer.request({"id": "r2", "type": "system", "data": {"action": []}})
        assert reply["type"] == "error" and reply["data"]["code"] == "invalid_field"
        pong = await peer.request({"id": "r3", "type": "system", "data": {"action": "ping"}})
        assert pong["data"]["action"] == "pong"
    finally:
        await peer.close()


# The size limit compared len(str) (characters) with a limit in bytes, so a text
# frame of 2-byte characters could be twice the configured size and still accepted.
async def test_multibyte_frame_over_the_byte_limit_is_too_large(gateway: GatewayProcess) -> None:
    peer = await connect_peer(gateway, "reg-utf8-user")
    try:
        frame = json.dumps({"id": "big", "type": "presence", "data": {"p": "\u00e9" * (MAX // 2)}},
                           ensure_ascii=False)
        assert len(frame) < MAX < len(frame.encode())
        await peer.send(frame)
        err = await peer.expect("error")
        assert err["data"]["code"] == "too_large"
        pong = await peer.request({"id": "after", "type": "system", "data": {"action": "ping"}})
        assert pong["data"]["action"] == "pong"
    finally:
        await peer.close()


# messages.envelope used `id or new_id()`, so a client message with id "" got a
# reply under a fresh id and the client never matched it (compat.md: it waits 10 s).
async def test_empty_client_id_is_echoed(gateway: GatewayProcess) -> None:
    peer = await connect_peer(gateway, "reg-empty-id-user")
    try:
        for frame in ({"id": "", "type": "presence"},
                      {"id": "", "type": "system", "data": {"action": "ping"}},
                      {"id": "", "type": "nope"}):
            await peer.send(frame)
            reply = await peer.recv()
            assert reply["id"] == "", reply
    finally:
        await peer.close()
