"""Chromium with permessage-deflate on: it negotiates it and reads the shared compressed frames."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser

from tests.browser.conftest import COOKIE, WEB_ENV, admin_headers, unique
from tests.helpers.gateway import GatewayProcess
from tests.helpers.tokens import make_token

pytestmark = pytest.mark.browser

OPEN = """async (url) => {
  window.__got = [];
  const ws = new WebSocket(url);
  window.__ws = ws;
  ws.addEventListener("message", (e) => window.__got.push(JSON.parse(e.data)));
  await new Promise((resolve, reject) => {
    ws.addEventListener("open", resolve);
    ws.addEventListener("close", (e) => reject(new Error("closed " + e.code)));
  });
  return ws.extensions;
}"""


@pytest.fixture
def deflating_gateway() -> Iterator[GatewayProcess]:
    gw = GatewayProcess(env={**WEB_ENV, "ROOMCAST_PERMESSAGE_DEFLATE": "on"}).start()
    yield gw
    gw.close()


def test_chromium_negotiates_deflate_and_reads_compressed_room_messages(
    browser: Browser, deflating_gateway: GatewayProcess
) -> None:
    gw = deflating_gateway
    user, room = unique("deflate"), "group:deflaters"
    ctx = browser.new_context(base_url=gw.base_url)
    try:
        page = ctx.new_page()
        page.goto("/healthz")  # a document of the gateway's origin: the cookie goes along
        token = make_token(gw.secret, user, groups=["deflaters"])
        ctx.add_cookies([{"name": COOKIE, "value": token, "url": gw.base_url, "httpOnly": True}])
        extensions = page.evaluate(OPEN, gw.ws_url)
        assert "permessage-deflate" in extensions
        page.wait_for_function(
            "(room) => window.__got.some((m) => m.type === 'room_joined' && m.room === room)",
            arg=room, timeout=30_000)
        texts = [f"compressed {n} " + "abc" * (100 * n + 1) for n in range(3)]
        for text in texts:
            reply = httpx.post(f"{gw.base_url}/websocket/rooms/{room}/message",
                               headers=admin_headers(gw),
                               json={"type": "message", "data": {"text": text}}, timeout=20)
            reply.raise_for_status()
        page.wait_for_function(
            "(n) => window.__got.filter((m) => m.type === 'message').length >= n",
            arg=len(texts), timeout=30_000)
        got = page.evaluate(
            "() => window.__got.filter((m) => m.type === 'message').map((m) => m.data.text)")
        assert got == texts
        assert page.evaluate("() => window.__ws.readyState") == 1  # still open: no error
    finally:
        ctx.close()
