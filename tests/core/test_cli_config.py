"""`roomcast serve`: bad settings stop start-up with one line; --help; WEBSOCKET_PATH."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import GatewayFactory
from tests.core.support import bearer, ping, refused_status, unique
from tests.helpers.tokens import make_token
from tests.helpers.ws import TIMEOUT, connect_peer

COMPAT_ENV = ("JWT_SECRET", "REDIS_URL", "WEBSOCKET_PATH", "WEBSOCKET_ALLOWED_ORIGINS",
              "WEBSOCKET_URL")


def serve(*args: str, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if k not in COMPAT_ENV and not k.startswith("ROOMCAST_")}
    return subprocess.run(
        [sys.executable, "-m", "roomcast", "serve", "--host", "127.0.0.1", *args],
        env={**base, "JWT_SECRET": "s" * 32, **(env or {})}, cwd=cwd,
        capture_output=True, text=True, timeout=60,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("roomcast:")
    for needle in needles:
        assert needle in lines[0]
    assert "listening" not in result.stdout


@pytest.fixture
def pem_dir(tmp_path: Path) -> Path:
    (tmp_path / "garbage.pem").write_text("-----BEGIN CERTIFICATE-----\nnope\n")
    (tmp_path / "a-directory").mkdir()
    return tmp_path


@pytest.mark.parametrize(("args", "env", "needle"), [
    (["--port", "abc"], {}, "--port='abc': not a port number"),
    (["--port", "70000"], {}, "--port='70000': not a port number"),
    (["--port", "-1"], {}, "not a port number"),
    (["--port", "0", "--ssl-certfile", "{dir}/missing.pem", "--ssl-keyfile",
      "{dir}/missing.key"], {}, "missing.pem"),
    (["--port", "0", "--ssl-certfile", "{dir}/garbage.pem", "--ssl-keyfile",
      "{dir}/garbage.pem"], {}, "certificate"),
    (["--port", "0", "--ssl-certfile", "{dir}/a-directory", "--ssl-keyfile",
      "{dir}/a-directory"], {}, None),
    (["--port", "0", "--ssl-certfile", "{dir}/garbage.pem"], {}, "ssl-keyfile"),
    (["--port", "0"], {"WEBSOCKET_ALLOWED_ORIGINS": "ftp://files.example.com"}, "ftp://"),
    (["--port", "0", "--allowed-origins", "not an origin"], {}, "not an origin"),
    (["--port", "0"], {"WEBSOCKET_PATH": "no-slash"}, "WEBSOCKET_PATH"),
    (["--port", "0"], {"ROOMCAST_PING_INTERVAL": "often"}, "ROOMCAST_PING_INTERVAL"),
    (["--port", "0"], {"JWT_SECRET": "short"}, "JWT_SECRET is too short"),
    # 31 bytes: PyJWT warns below 32 (RFC 7518); so do we, by refusing it.
    (["--port", "0"], {"JWT_SECRET": "s" * 31}, "at least 32 bytes (RFC 7518), this one has 31"),
    (["--port", "0"], {"JWT_SECRET": "é" * 15}, "this one has 30"),
    (["--port", "0"], {"ROOMCAST_PING_INTERVAL": "5", "ROOMCAST_PING_TIMEOUT": "5"}, "ping"),
    (["--port", "0", "--max-message-size", "0"], {}, "max-message-size"),
    (["--port", "0", "--log-format", "xml"], {}, "xml"),
])
def test_bad_setting_is_one_line_without_traceback(
    pem_dir: Path, args: list[str], env: dict[str, str], needle: str | None,
) -> None:
    args = [a.replace("{dir}", str(pem_dir)) for a in args]
    result = serve(*args, env=env, cwd=pem_dir)
    assert_one_line_error(result, *([needle] if needle else []))


def test_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = serve("--port", str(port), env={"ROOMCAST_DB": str(tmp_path / "m.db")})
    # The app starts (and logs so) before the bind fails: one error line among the logs.
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("roomcast:")]
    assert len(errors) == 1 and str(port) in errors[0]


def test_help_documents_every_setting() -> None:
    result = subprocess.run([sys.executable, "-m", "roomcast", "serve", "--help"],
                            capture_output=True, text=True, timeout=60, check=True)
    for name in (*COMPAT_ENV, "JWT_ISSUER", "ROOMCAST_DEV_LOGIN", "ROOMCAST_SSL_CERTFILE",
                 "ROOMCAST_SSL_KEYFILE", "ROOMCAST_PING_INTERVAL", "ROOMCAST_PING_TIMEOUT",
                 "ROOMCAST_MAX_MESSAGE_SIZE", "ROOMCAST_LOG_FORMAT"):
        assert name in result.stdout, name
    for flag in ("--host", "--port", "--ssl-certfile", "--ssl-keyfile"):
        assert flag in result.stdout
    # Unset-by-default settings say what they do instead of "default None"; the on/off/auto
    # ones say auto, which is what they are.
    text = " ".join(result.stdout.split())
    assert "None" not in text
    for name in ("ROOMCAST_DEV_LOGIN", "ROOMCAST_DEMO"):
        assert f"[env {name}; default 'auto']" in text


async def test_custom_websocket_path(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(env={"WEBSOCKET_PATH": "/realtime/socket"})
    assert gw.ws_url.endswith("/realtime/socket")
    peer = await connect_peer(gw, unique("path"))
    await ping(peer)
    await peer.close()
    default = f"ws://127.0.0.1:{gw.port}/websocket/connect"
    token = make_token(gw.secret, unique("path"))
    assert await refused_status(gw, bearer(token), url=default) == 404


async def test_max_message_size_is_configurable(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(env={"ROOMCAST_MAX_MESSAGE_SIZE": "1024"})
    peer = await connect_peer(gw, unique("small"))
    try:
        await peer.send('{"id": "big", "type": "presence", "data": {"p": "%s"}}' % ("x" * 1100))
        reply = await peer.recv()
        assert reply["type"] == "error" and reply["data"]["code"] == "too_large"
        await ping(peer)
        await peer.send("x" * 2049)  # over twice the limit
        async with asyncio.timeout(TIMEOUT):
            await peer.ws.wait_closed()
        assert peer.ws.close_code == 1009
    finally:
        await peer.close()
