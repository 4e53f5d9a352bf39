"""Bugs found in the gateway core, one test each, so they stay fixed."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiohttp.test_utils import TestServer
from websockets.asyncio.client import connect

from roomcast import config
from roomcast.exceptions import ProtocolError
from roomcast.protocol.codes import ErrorCode
from roomcast.protocol.envelope import parse_client_message
from roomcast.server import tokens
from roomcast.server.app import create_app
from roomcast.session import Session
from tests.helpers.gateway import GatewayProcess
from tests.helpers.tokens import make_token
from tests.helpers.ws import TIMEOUT, Peer, connect_peer

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
# reply under a fresh id and the client never matched it (it waits 10 s).
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


# An unexpected exception in a connection's handler was meant to close it with 1011,
# but the close was only scheduled: the handler returned first and aiohttp closed the
# socket with 1000, so the client saw a normal close. The log line also lost the
# traceback: log_event passed exc_info=True along as a plain field.
# Fault injection needs the app in this process (still real sockets).
SECRET = "regression-secret-" + "x" * 20


@pytest.fixture
async def inprocess_gateway(tmp_path: Path) -> AsyncIterator[TestServer]:
    settings = config.load(None, {"JWT_SECRET": SECRET, "ROOMCAST_DB": str(tmp_path / "m.db")})
    server = TestServer(create_app(settings), host="127.0.0.1", port=0)
    await server.start_server()
    yield server
    await server.close()


async def test_internal_error_closes_with_1011_and_logs_the_traceback(
    inprocess_gateway: TestServer, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    original = Session.handle

    async def failing(self: Session, command: object) -> None:
        if self.conn.user_id == "victim":
            raise RuntimeError("injected fault")
        await original(self, command)  # type: ignore[arg-type]

    monkeypatch.setattr(Session, "handle", failing)
    url = f"ws://127.0.0.1:{inprocess_gateway.port}/websocket/connect"

    async def open_as(user: str) -> Peer:
        headers = {"Authorization": f"Bearer {make_token(SECRET, user)}"}
        peer = Peer(await connect(url, additional_headers=headers, open_timeout=TIMEOUT))
        peer.welcome = await peer.recv()
        await peer.expect("room_joined")
        return peer

    victim, bystander = await open_as("victim"), await open_as("bystander")
    with caplog.at_level(logging.ERROR, logger="roomcast.websocket"):
        await victim.send({"id": "x", "type": "presence"})
        await victim.ws.wait_closed()
    assert (victim.ws.close_code, victim.ws.close_reason) == (1011, "internal error")
    (failed,) = [r for r in caplog.records if r.getMessage() == "connection_failed"]
    assert failed.exc_info is not None and "injected fault" in str(failed.exc_info[1])
    assert "exc_info" not in getattr(failed, "fields", {})
    reply = await bystander.request({"id": "p", "type": "system", "data": {"action": "ping"}})
    assert reply["data"]["action"] == "pong"
    await bystander.close()


# An unexpected exception in an API route outside the admin operations (the token
# refresh, the status) answered aiohttp's text/plain 500, not the API's problem+json.
async def test_an_unexpected_error_in_an_api_route_answers_problem_json(
    inprocess_gateway: TestServer, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def failing(*_: object, **__: object) -> None:
        raise RuntimeError("injected fault")

    monkeypatch.setattr(tokens, "read_body", failing)
    token = make_token(SECRET, "refresher")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{inprocess_gateway.port}",
                                 timeout=TIMEOUT) as http:
        with caplog.at_level(logging.ERROR, logger="roomcast.server"):
            r = await http.post("/websocket/token/refresh", json={"connection_ids": ["x"]},
                                headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 500, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == "internal" and "injected" not in r.text
        (failed,) = [rec for rec in caplog.records if rec.getMessage() == "request_failed"]
        assert failed.exc_info is not None and "injected fault" in str(failed.exc_info[1])
        assert (await http.get("/websocket/status")).status_code == 200  # still serving
