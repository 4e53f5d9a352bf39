"""A kick that sticks, against the React client's reconnect as Chromium runs it.

The React manager reconnects after any close code (1 s x 1.5 per attempt, capped at
30 s), so a plain kick is undone within a second; with ``ban_seconds`` every attempt
is refused until the ban ends, and then it gets back in.
"""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.browser.conftest import COOKIE, admin_headers, unique
from tests.helpers.gateway import GatewayProcess
from tests.helpers.tokens import make_token

pytestmark = pytest.mark.browser

#: The React client's connection manager, reduced to its reconnect rule.
REACT_MANAGER = """(url) => {
  const state = { opens: 0, closes: [], ids: [] };
  window.__react = state;
  let attempt = 0;
  const open = () => {
    const ws = new WebSocket(url);
    ws.addEventListener("open", () => { state.opens += 1; attempt = 0; });
    ws.addEventListener("message", (e) => {
      const msg = JSON.parse(e.data);
      if (msg.type === "system_notification") state.ids.push(msg.data.connection_id);
    });
    ws.addEventListener("close", (e) => {
      state.closes.push(e.code);
      const delay = Math.min(1000 * 1.5 ** attempt, 30000);
      attempt += 1;
      setTimeout(open, delay);
    });
  };
  open();
}"""


def _react_page(browser: Browser, gw: GatewayProcess, user: str) -> Page:
    ctx = browser.new_context(base_url=gw.base_url)
    ctx.add_cookies([{"name": COOKIE, "value": make_token(gw.secret, user),
                      "url": gw.base_url, "httpOnly": True}])
    page = ctx.new_page()
    page.goto("/healthz")  # a document of the gateway's origin: the cookie goes along
    page.evaluate(REACT_MANAGER, gw.ws_url)
    page.wait_for_function("window.__react.ids.length === 1")
    return page


def _kick(gw: GatewayProcess, conn_id: str, body: dict[str, object] | None) -> None:
    reply = httpx.post(f"{gw.base_url}/websocket/connections/{conn_id}/disconnect",
                       json=body, headers=admin_headers(gw), timeout=30)
    assert reply.status_code == 200, reply.text


def test_a_plain_kick_is_undone_by_the_react_reconnect(browser: Browser,
                                                      gateway: GatewayProcess) -> None:
    page = _react_page(browser, gateway, unique("undo"))
    _kick(gateway, page.evaluate("window.__react.ids[0]"), None)
    page.wait_for_function("window.__react.ids.length === 2", timeout=30_000)
    assert page.evaluate("window.__react.closes") == [3500]
    page.context.close()


def test_a_kick_with_a_duration_keeps_the_react_client_out_until_it_ends(
    browser: Browser, gateway: GatewayProcess
) -> None:
    page = _react_page(browser, gateway, unique("stuck"))
    _kick(gateway, page.evaluate("window.__react.ids[0]"), {"ban_seconds": 8})
    # Refused handshakes show in a browser as 1006 closes; the reconnects keep coming.
    page.wait_for_function("window.__react.closes.length >= 3", timeout=30_000)
    assert page.evaluate("window.__react.ids.length") == 1
    closes = page.evaluate("window.__react.closes")
    assert closes[0] == 3500 and set(closes[1:]) == {1006}, closes
    # Once the ban is over, the next attempt gets in.
    page.wait_for_function("window.__react.ids.length === 2", timeout=60_000)
    log = gateway.log()
    assert '"event":"handshake_refused"' in log and '"reason":"kicked"' in log
    page.context.close()
