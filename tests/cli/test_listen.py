"""``roomcast listen`` end to end: live lines, formats, and surviving a gateway restart."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import signal
import sys
from typing import Any

from roomcast.cli.listen import format_line
from roomcast.client import Client, Message
from tests.cli.support import cli_env, roomcast, roomcast_async
from tests.helpers.gateway import GatewayProcess
from tests.helpers.tokens import make_token, raw_token


async def next_line(stream: asyncio.StreamReader, pred: Any = lambda line: True) -> str:
    """The next line of ``stream`` matching ``pred``."""
    while True:
        raw = await stream.readline()
        assert raw, "the listener exited"
        line = raw.decode().rstrip("\n")
        if pred(line):
            return line


async def test_listen_json_survives_a_gateway_restart(fresh_gateway: GatewayProcess) -> None:
    gw = fresh_gateway
    token = make_token(gw.secret, "listener", groups=["ops"])
    proc = await roomcast_async("listen", gw.ws_url, "--token", token, "--json")
    assert proc.stdout is not None and proc.stderr is not None
    try:
        welcome = json.loads(await next_line(proc.stdout))
        assert welcome["type"] == "system_notification"
        await next_line(proc.stdout, lambda line: '"room":"group:ops"' in line)
        sender_token = make_token(gw.secret, "sender", groups=["ops"])
        async with Client(gw.ws_url, token=sender_token) as sender:
            await sender.room("group:ops").wait_joined()
            await sender.room("group:ops").send({"text": "before"})
        line = await next_line(proc.stdout, lambda line: '"type":"message"' in line)
        assert json.loads(line)["data"] == {"text": "before"}

        await asyncio.to_thread(gw.kill)
        await next_line(proc.stderr, lambda line: "reconnecting" in line)
        await asyncio.to_thread(gw.start)
        await next_line(proc.stderr, lambda line: line.startswith("roomcast: connected"))
        await next_line(proc.stdout, lambda line: '"room":"group:ops"' in line)
        async with Client(gw.ws_url, token=sender_token) as sender:
            await sender.room("group:ops").wait_joined()
            await sender.room("group:ops").send({"text": "after"})
        line = await next_line(proc.stdout, lambda line: '"type":"message"' in line)
        assert json.loads(line)["data"] == {"text": "after"}
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    assert await proc.wait() == 0


async def test_listen_readable_lines_with_filters(gateway: GatewayProcess) -> None:
    token = make_token(gateway.secret, "listener", groups=["a", "b"])
    proc = await roomcast_async(
        "listen", gateway.ws_url, "--token", token, "--type", "message", "--room", "group:b"
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        await next_line(proc.stderr, lambda line: line.startswith("roomcast: connected"))
        async with Client(
            gateway.ws_url, token=make_token(gateway.secret, "s", groups=["a", "b"])
        ) as sender:
            await sender.room("group:b").wait_joined()
            await sender.room("group:a").send({"n": "filtered out"})
            await sender.room("group:b").send({"n": "shown"})
        line = await next_line(proc.stdout)
        # Not a terminal: no colour. The first line is the one message that passed.
        assert re.fullmatch(r'\d\d:\d\d:\d\d message group:b from=\S{8} \{"n":"shown"\}', line)
    finally:
        proc.send_signal(signal.SIGTERM)
    assert await proc.wait() == 0


async def test_listen_colours_on_a_terminal(gateway: GatewayProcess) -> None:
    token = make_token(gateway.secret, "listener")
    primary, secondary = pty.openpty()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "roomcast",
        "listen",
        gateway.ws_url,
        "--token",
        token,
        stdout=secondary,
        stderr=asyncio.subprocess.DEVNULL,
        env=cli_env(),
    )
    os.close(secondary)
    try:
        seen = ""
        while "system_notification" not in seen:
            chunk = await asyncio.to_thread(os.read, primary, 4096)
            assert chunk, "the listener exited"
            seen += chunk.decode()
        assert "\033[34msystem_notification\033[0m" in seen
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await proc.wait() == 0
        os.close(primary)


def test_listen_with_a_refused_token_exits_1(gateway: GatewayProcess) -> None:
    expired = raw_token(gateway.secret, {"user_id": "u", "exp": 1})
    done = roomcast("listen", gateway.ws_url, "--token", expired)
    assert done.returncode == 1
    # The state lines listen prints, then the server's reason; no log record of the SDK's.
    assert done.stderr.splitlines() == [
        "roomcast: connecting",
        "roomcast: error",
        "roomcast: authentication failed: HTTP 401 (expired)",
    ], done.stderr


def test_format_line_plain_and_coloured() -> None:
    msg = Message.from_dict(
        {
            "type": "error",
            "room": "group:x",
            "from": "abcdef123456",
            "data": {"code": "forbidden"},
            "timestamp": "2026-01-02T03:04:05.000Z",
        }
    )
    plain = format_line(msg)
    assert re.fullmatch(r'\d\d:\d\d:05 error group:x from=abcdef12 \{"code":"forbidden"\}', plain)
    coloured = format_line(msg, colour=True)
    assert "\033[31merror\033[0m" in coloured
    assert "\033[1mgroup:x\033[0m" in coloured
    assert re.sub(r"\033\[[0-9;]*m", "", coloured) == plain
