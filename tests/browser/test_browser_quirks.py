"""Chromium's own WebSocket, as the React client uses it: cut emoji, two cookies, Basic auth.

The page is a document of the gateway itself (same origin), so Chromium sends the
login cookie on the upgrade, as it does for the React app.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.browser.conftest import COOKIE, unique
from tests.core.support import log_events
from tests.helpers.gateway import GatewayProcess
from tests.helpers.tokens import make_token, raw_token

pytestmark = pytest.mark.browser

#: Opens a socket, sends one frame (or none), and collects what comes back for a while.
SOCKET = """async ({url, wantId}) => {
  const frame = __FRAME__;
  const ws = new WebSocket(url);
  const got = [];
  const closed = new Promise((resolve) => ws.addEventListener("close", (e) => resolve(e.code)));
  const opened = await Promise.race([
    new Promise((resolve) => ws.addEventListener("open", () => resolve(true))), closed]);
  if (opened !== true) return {opened: false, code: opened, got};
  ws.addEventListener("message", (e) => got.push(JSON.parse(e.data)));
  if (frame !== null) ws.send(frame);
  const deadline = Date.now() + 10000;
  while (Date.now() < deadline) {
    if (wantId === null ? got.length >= 2 : got.some((m) => m.id === wantId)) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  ws.close();
  return {opened: true, got};
}"""


def _page(browser: Browser, gw: GatewayProcess, **context: Any) -> tuple[BrowserContext, Page]:
    ctx = browser.new_context(base_url=gw.base_url, **context)
    page = ctx.new_page()
    page.goto("/healthz")  # any document of the gateway's origin
    return ctx, page


def _socket(page: Page, gw: GatewayProcess, frame_js: str | None,
            want_id: str | None) -> dict[str, Any]:
    script = SOCKET.replace("__FRAME__", frame_js or "null")
    result: dict[str, Any] = page.evaluate(script, {"url": gw.ws_url, "wantId": want_id})
    return result


def test_a_string_cut_inside_an_emoji_is_sent_and_answered(
        browser: Browser, gateway: GatewayProcess) -> None:
    user = unique("cut")
    ctx, page = _page(browser, gateway)
    ctx.add_cookies([{"name": COOKIE, "value": make_token(gateway.secret, user),
                      "url": gateway.base_url, "httpOnly": True}])
    # The React client: JSON.stringify of a message whose text was cut by slice().
    frame = ('JSON.stringify({id: "react-1", type: "message", room: "user:' + user + '", '
             'data: {text: "hi 😀".slice(0, 4)}})')
    result = _socket(page, gateway, frame, "react-1")
    assert result["opened"], result
    by_id = [m for m in result["got"] if m.get("id") == "react-1"]
    assert by_id and by_id[0]["type"] == "system" and by_id[0]["data"]["status"] == "ok", result
    delivered = [m for m in result["got"] if m.get("type") == "message"]
    assert delivered and delivered[0]["data"] == {"text": "hi \ufffd"}, result
    ctx.close()


def test_two_auth_cookies_and_a_cached_basic_header(
        browser: Browser, own_gateway: GatewayProcess) -> None:
    gw = own_gateway
    user = unique("two")
    expired = raw_token(gw.secret, {"user_id": unique("old"), "exp": int(time.time()) - 5})
    # Basic credentials the browser keeps sending to a staging site, on every request.
    ctx, page = _page(browser, gw, extra_http_headers={"Authorization": "Basic dXNlcjpwYXNz"})
    # Alone, the Basic header is refused: the browser really sends it.
    alone = _socket(page, gw, None, None)
    assert not alone["opened"], alone
    # Two cookies of one name: Chromium sends the longer path first (the stale one).
    ctx.add_cookies([
        {"name": COOKIE, "value": expired, "domain": "127.0.0.1", "path": "/websocket",
         "httpOnly": True},
        {"name": COOKIE, "value": make_token(gw.secret, user), "url": gw.base_url,
         "httpOnly": True},
    ])
    result = _socket(page, gw, None, None)
    assert result["opened"], result
    welcome = result["got"][0]
    assert welcome["type"] == "system_notification" and welcome["data"]["user_id"] == user
    reasons = [e["reason"] for e in log_events(gw) if e["event"] == "handshake_refused"]
    assert reasons == ["malformed_authorization"], reasons
    ctx.close()
