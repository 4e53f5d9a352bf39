"""The deployment of docs/deploy.md, for real: Debian's nginx terminating TLS (a test-made
certificate) in front of two roomcast instances on one Redis.

nginx runs the repository's deploy/nginx-roomcast.conf with only its addresses and
certificate paths replaced; the docs include that file verbatim (checked here too).
Chromium, on a page of the public https origin, connects with its cookie; Python
clients and the admin API go through nginx as well.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
import warnings
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from playwright.sync_api import Browser, Playwright, sync_playwright
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Origin

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.helpers.gateway import GatewayProcess
from tests.helpers.ports import stable_port
from tests.helpers.redis_server import RedisServer, redis_server_binary
from tests.helpers.tokens import make_token

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "deploy" / "nginx-roomcast.conf"
API_KEY = "deploy-test-key-0123456789abcdef"
COOKIE = "falcon_auth_token"
TIMEOUT = 20.0

pytestmark = [pytest.mark.redis, pytest.mark.browser]


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/bin/nginx") if os.access(p, os.X_OK)), None)


def test_the_docs_show_the_configuration_the_test_runs() -> None:
    docs = (ROOT / "docs" / "deploy.md").read_text()
    blocks = re.findall(r"```nginx\n(.*?)```", docs, re.S)
    assert blocks == [SITE.read_text()]


def site_config(upstreams: tuple[int, int], http_port: int, https_port: int,
                cert: Path, key: Path) -> str:
    """The repository's file with this machine's ports and certificate, nothing else."""
    text = SITE.read_text()
    for old, new in (
        ("server 127.0.0.1:8081 ", f"server 127.0.0.1:{upstreams[0]} "),
        ("server 127.0.0.1:8082 ", f"server 127.0.0.1:{upstreams[1]} "),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;"),
        ("/etc/ssl/roomcast/fullchain.pem", str(cert)),
        ("/etc/ssl/roomcast/privkey.pem", str(key)),
    ):
        assert text.count(old) == 1, f"deploy/nginx-roomcast.conf no longer has {old!r}"
        text = text.replace(old, new)
    return text


MAIN = """daemon off;
master_process on;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
{user}
events {{ worker_connections 256; }}
http {{
    # Which instance answered, when and how fast: what a failure's report shows.
    log_format upstreams '$remote_addr [$time_local] "$request" $status '
                         'upstream=$upstream_addr/$upstream_status '
                         'connect=$upstream_connect_time total=$request_time';
    access_log {dir}/access.log upstreams;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {dir}/roomcast.conf;
}}
"""


@dataclass
class Deployment:
    gateways: list[GatewayProcess]
    https_port: int
    http_port: int
    ca: trustme.CA
    secret: str
    error_log: Path

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def ws_url(self) -> str:
        return f"wss://127.0.0.1:{self.https_port}/websocket/connect"

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        return ctx

    def ws_ssl_context(self) -> ssl.SSLContext:
        """For websockets' sync client: TLS 1.2 at most.

        That client reads in a background thread while the caller writes, on one
        ``ssl.SSLSocket``, which is not safe to use from two threads at once. Under TLS
        1.3 nginx sends its session tickets just after the handshake, as the upgrade
        request is written: now and then the request never reached nginx ("client timed
        out while waiting for request" in its log, no answer within 20 s), in CI only.
        Under TLS 1.2 nothing arrives before the answer. Chromium and httpx (one thread
        each) still speak TLS 1.3 to nginx.
        """
        ctx = self.ssl_context()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.origin, verify=self.ssl_context(), timeout=TIMEOUT,
                            headers={"X-API-Key": API_KEY})


def _listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + TIMEOUT
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited: {log.read_text() if log.exists() else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nginx does not listen; log:\n{log.read_text()}") from None
            time.sleep(0.05)  # a process outside ours: nothing to await but its port


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    nginx = nginx_binary()
    if nginx is None or redis_server_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("nginx and redis-server must be installed (scripts/test.sh does it)")
        pytest.skip("needs nginx and redis-server (apt-get install nginx redis-server)")
    tmp = tmp_path_factory.mktemp("deploy")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.cert_chain_pems[0].write_to_path(str(tmp / "fullchain.pem"))
    cert.private_key_pem.write_to_path(str(tmp / "privkey.pem"))
    with RedisServer(tmp / "redis") as redis:
        secret = "deploy-test-secret-0123456789abcdefghij"
        env = {"REDIS_URL": redis.url, "JWT_SECRET": secret, "API_PREFIX": "/api",
               "ROOMCAST_TRUSTED_PROXIES": "127.0.0.1,::1", "ROOMCAST_API_KEY": API_KEY}
        gateways = [GatewayProcess(env=env) for _ in range(2)]
        try:
            for gw in gateways:
                gw.start()
            http_port, https_port = stable_port(), stable_port()
            (tmp / "roomcast.conf").write_text(site_config(
                (gateways[0].port, gateways[1].port), http_port, https_port,
                tmp / "fullchain.pem", tmp / "privkey.pem"))
            user = "user root;" if os.geteuid() == 0 else ""
            (tmp / "nginx.conf").write_text(MAIN.format(dir=tmp, user=user))
            check = subprocess.run([nginx, "-t", "-p", str(tmp), "-c", str(tmp / "nginx.conf")],
                                   capture_output=True, text=True, timeout=TIMEOUT)
            assert check.returncode == 0, check.stderr
            proc = subprocess.Popen([nginx, "-p", str(tmp), "-c", str(tmp / "nginx.conf")],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                _listening(https_port, proc, tmp / "error.log")
                yield Deployment(gateways, https_port, http_port, ca, secret,
                                 tmp / "error.log")
            finally:
                proc.send_signal(signal.SIGQUIT)  # graceful: lets workers finish
                try:
                    proc.wait(TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(TIMEOUT)
        finally:
            for gw in gateways:
                gw.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} missing: the test command must apt-get install chromium")
        pytest.skip(f"{CHROMIUM} missing (apt-get install chromium)")
    with sync_playwright() as pw:
        yield _launch(pw)


def _launch(pw: Playwright) -> Browser:
    return pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


#: In the page: open the socket (the cookie rides along), send, and collect for a while.
PAGE_SOCKET = """async ({url, send, until}) => {
  const ws = new WebSocket(url);
  const got = [];
  ws.addEventListener("message", (e) => got.push(JSON.parse(e.data)));
  const closed = new Promise((r) => ws.addEventListener("close", (e) => r(e.code)));
  const opened = await Promise.race([
    new Promise((r) => ws.addEventListener("open", () => r(true))), closed]);
  if (opened !== true) return {opened: false, got};
  window.__ws = ws;
  window.__got = got;
  if (send) ws.send(JSON.stringify(send));
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline && !got.some((m) => m.id === until || m.type === until)) {
    await new Promise((r) => setTimeout(r, 20));
  }
  return {opened: true, got};
}"""


def python_client(stack: ExitStack, dep: Deployment, user: str, groups: list[str]) -> Any:
    """A second browser-like client: Origin of the public site, cookie, TLS through nginx.

    A socket that nginx closes before the request was even written (seen once in CI on
    an overloaded machine, right after the TLS handshake) is dialled again once, as every
    real client does; the nginx log of that moment is attached as a warning. Any answer
    from roomcast itself (a refusal, a close) is never retried.
    """
    token = make_token(dep.secret, user, groups=groups)

    def dial() -> Any:
        return connect(dep.ws_url, ssl=dep.ws_ssl_context(), origin=Origin(dep.origin),
                       additional_headers={"Cookie": f"{COOKIE}={token}"},
                       open_timeout=TIMEOUT)

    try:
        return stack.enter_context(dial())
    except ConnectionClosedError as exc:
        if exc.rcvd is not None or exc.sent is not None:
            raise
        warnings.warn(f"nginx closed a new socket before its request ({exc}); "
                      f"nginx log:\n{_tail(dep.error_log)}", stacklevel=2)
        return stack.enter_context(dial())


def _tail(log: Path, lines: int = 20) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) \
        if log.exists() else "(no log)"


def recv_until(ws: Any, pred: Any) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT
    while True:
        msg: dict[str, Any] = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        if pred(msg):
            return msg


def test_a_browser_through_nginx_gets_its_rooms_and_messages_across_instances(
        deployment: Deployment, browser: Browser) -> None:
    dep = deployment
    group = f"crew-{os.getpid()}"
    room = f"group:{group}"
    context = browser.new_context(ignore_https_errors=True)
    context.add_cookies([{"name": COOKIE, "value": make_token(dep.secret, "ann", groups=[group]),
                          "url": dep.origin, "httpOnly": True, "secure": True}])
    page = context.new_page()
    page.goto(f"{dep.origin}/api/websocket/status")  # a document of the public origin
    stack = ExitStack()
    # Python clients of another user, enough for nginx to spread them over both instances.
    others = [python_client(stack, dep, "bob", [group]) for _ in range(3)]
    try:
        result = page.evaluate(PAGE_SOCKET, {"url": dep.ws_url, "send": None,
                                             "until": "room_joined"})
        assert result["opened"], "the same-origin browser socket was refused through nginx"
        page.wait_for_function(
            "() => window.__got.filter((m) => m.type === 'room_joined').length >= 2",
            timeout=TIMEOUT * 1000)
        joined = page.evaluate("() => window.__got.filter((m) => m.type === 'room_joined')"
                               ".map((m) => m.room)")
        assert set(joined) == {"user:ann", room}
        with dep.api() as api:
            listing = api.get("/api/websocket/connections", params={"room_id": room})
            assert listing.status_code == 200, listing.text
            servers = {c["server_id"] for c in listing.json()["connections"]}
            assert len(listing.json()["connections"]) == 4
            # Round robin: both instances hold some of them, so what follows crosses Redis.
            assert len(servers) == 2, listing.json()

        # The browser posts to the room: every other member, on either instance, gets it.
        page.evaluate("(room) => window.__ws.send(JSON.stringify({id: 'b1', type: 'message',"
                      " room, data: {text: 'from the browser'}}))", room)
        page.wait_for_function("() => window.__got.some((m) => m.id === 'b1')",
                               timeout=TIMEOUT * 1000)
        for ws in others:
            got = recv_until(ws, lambda m: m.get("type") == "message")
            assert got["data"] == {"text": "from the browser"} and got["room"] == room

        # A Python member posts back; the browser gets it, whichever instance it is on.
        others[0].send('{"id": "p1", "type": "message", "room": "' + room + '", '
                       '"data": {"text": "from python"}}')
        page.wait_for_function(
            "() => window.__got.some((m) => m.type === 'message' && "
            "m.data.text === 'from python')", timeout=TIMEOUT * 1000)
    finally:
        stack.close()
        context.close()


def test_the_admin_api_works_through_the_prefix(deployment: Deployment) -> None:
    dep = deployment
    group = f"ops-{os.getpid()}"
    stack = ExitStack()
    members = [python_client(stack, dep, f"member{i}", [group]) for i in range(2)]
    try:
        for ws in members:
            recv_until(ws, lambda m: m.get("type") == "room_joined"
                       and m["room"] == f"group:{group}")
        with dep.api() as api:
            status = api.get("/api/websocket/status")
            assert status.status_code == 200 and status.json()["module"] == "websocket"
            # URLs in answers carry the public scheme and host, as the browser sees them.
            assert status.json()["$schema"] == f"{dep.origin}/api/schemas/Status.json"
            sent = api.post(f"/api/websocket/rooms/group:{group}/message",
                            json={"type": "notification", "data": {"text": "deploy"}})
            assert sent.status_code == 200, sent.text
            assert sent.json()["recipients_count"] == 2
            for ws in members:
                assert recv_until(ws, lambda m: m.get("type") == "notification")["data"] == {
                    "text": "deploy"}
            missing = api.get("/api/websocket/connections/nope-nope")
            assert missing.status_code == 404
            assert missing.headers["Content-Type"].startswith("application/problem+json")
            assert missing.json()["$schema"] == f"{dep.origin}/api/schemas/ErrorModel.json"
            assert api.get("/readyz").json() == {"status": "ready"}
    finally:
        stack.close()


def test_a_foreign_origin_and_plain_http_are_refused(deployment: Deployment) -> None:
    dep = deployment
    token = make_token(dep.secret, "eve")
    with pytest.raises(InvalidStatus) as refused, connect(
            dep.ws_url, ssl=dep.ws_ssl_context(), origin=Origin("https://evil.example"),
            additional_headers={"Cookie": f"{COOKIE}={token}"}, open_timeout=TIMEOUT):
        pass
    assert refused.value.response.status_code == 403
    r = httpx.get(f"http://127.0.0.1:{dep.http_port}/api/websocket/status", timeout=TIMEOUT)
    assert r.status_code == 308
    assert r.headers["Location"].startswith("https://127.0.0.1/api/websocket/status")
