"""``roomcast send`` end to end against a real gateway."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable

import pytest

from roomcast.client import Client
from tests.cli.support import roomcast
from tests.helpers.gateway import GatewayProcess
from tests.helpers.tokens import make_token, raw_token


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_send_prints_the_ack_and_the_room_gets_it(gateway: GatewayProcess) -> None:
    token = make_token(gateway.secret, "sender", groups=["ops"])
    async with Client(gateway.ws_url, token=make_token(gateway.secret, "rx", groups=["ops"])) as rx:
        await rx.room("group:ops").wait_joined()
        inbox = rx.messages("message")
        done = await asyncio.to_thread(
            roomcast,
            "send",
            gateway.ws_url,
            "--token",
            token,
            "--room",
            "group:ops",
            "--data",
            '{"text": "from the cli"}',
        )
        assert done.returncode == 0, done.stderr
        ack = json.loads(done.stdout)
        assert ack["type"] == "system"
        assert ack["data"]["action"] == "ack"
        got = await inbox.get()
        assert got.data["text"] == "from the cli"
        assert got.id == ack["data"]["message_id"]


async def test_send_to_a_connection_with_a_base_url(gateway: GatewayProcess) -> None:
    async with Client(gateway.ws_url, token=make_token(gateway.secret, "rx", groups=["g1"])) as rx:
        await rx.room("group:g1").wait_joined()
        inbox = rx.messages("custom_event")
        assert rx.connection_id is not None
        base = f"http://127.0.0.1:{gateway.port}"  # the default path is added
        done = await asyncio.to_thread(
            roomcast,
            "send",
            base,
            "--token",
            make_token(gateway.secret, "tx", groups=["g1"]),
            "--to",
            rx.connection_id,
            "--type",
            "custom_event",
            "--data",
            '{"n": 1}',
        )
        assert done.returncode == 0, done.stderr
        assert dict((await inbox.get()).data) == {"n": 1}


def test_error_reply_exits_1_with_the_code(gateway: GatewayProcess) -> None:
    done = roomcast(
        "send",
        gateway.ws_url,
        "--token",
        make_token(gateway.secret, "u"),
        "--room",
        "group:not-mine",
        "--data",
        "{}",
    )
    assert done.returncode == 1
    assert "refused the message: forbidden" in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(("token", "reason"), [
    (lambda gw: "nonsense", "malformed_token"),
    (lambda gw: raw_token(gw.secret, {"user_id": "u", "exp": 1}), "expired"),
    (lambda gw: make_token("another-secret-than-the-gateway-uses-0123", "u"), "bad_signature"),
])
def test_refused_credentials_exit_1_with_the_gateway_reason(
    gateway: GatewayProcess, token: Callable[[GatewayProcess], str], reason: str,
) -> None:
    done = roomcast("send", gateway.ws_url, "--token", token(gateway), "--room", "group:x")
    assert done.returncode == 1
    # One line, with the server's reason; no log record of the SDK's beside it.
    assert done.stderr.splitlines() == [
        f"roomcast: authentication failed: HTTP 401 ({reason})"], done.stderr
    assert done.stdout == ""


def test_unreachable_gateway_exits_1() -> None:
    url = f"ws://127.0.0.1:{free_port()}/websocket/connect"
    done = roomcast("send", url, "--token", "t", "--room", "group:x", "--connect-timeout", "0.5")
    assert done.returncode == 1
    assert "could not connect" in done.stderr


def test_bad_arguments_exit_2() -> None:
    for data, message in (("{nope", "not valid JSON"), ("[1, 2]", "must be a JSON object")):
        done = roomcast("send", "ws://127.0.0.1:1", "--room", "group:x", "--data", data)
        assert done.returncode == 2
        assert message in done.stderr
    done = roomcast("send", "ftp://somewhere", "--room", "group:x")
    assert done.returncode == 2
    assert "not a WebSocket URL" in done.stderr
