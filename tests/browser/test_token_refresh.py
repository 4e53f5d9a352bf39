"""client.js keeps a cookie-authenticated connection alive across token expiry, in Chromium.

The dev login's tokens live 6 s here and the gateway warns 4 s ahead: the demo renews
the HttpOnly cookie (``/login/renew``) and client.js posts it to the refresh route, so
the same connection outlives token after token without a reconnect.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import WEB_ENV, Web, _web, unique
from tests.helpers.gateway import GatewayProcess

pytestmark = pytest.mark.browser

SHORT = {**WEB_ENV, "ROOMCAST_DEV_TOKEN_TTL": "6", "ROOMCAST_EXPIRY_WARNING": "4",
         "ROOMCAST_JWT_LEEWAY": "0"}


@pytest.fixture
def short_web(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Web]:
    gw = GatewayProcess(env=SHORT).start()
    try:
        yield from _web(browser, gw, request)
    finally:
        gw.close()


def test_the_demo_refreshes_its_cookie_token_without_reconnecting(short_web: Web) -> None:
    page = short_web.login(unique("rita"), "Rita", f"{unique('red')}:Red")
    first = page.evaluate("roomcast.connectionId")
    assert first
    # Each refresh gives a 6 s token warned 4 s ahead: the third refresh comes after the
    # login token's expiry, which would have closed the connection (3401) without it.
    page.wait_for_function(
        "window.__toasts.filter((t) => t.text.includes('Token refreshed')).length >= 3",
        timeout=60_000)
    expect(page.locator("#token")).to_contain_text("refreshed, valid until")
    assert page.evaluate("roomcast.connectionId") == first
    assert page.evaluate("roomcast.status.reconnects") == 0
    expect(page.locator("#badge")).to_have_text("connected")
    log = short_web.gateway.log()
    assert '"event":"token_expired"' not in log and '"event":"cookie_refresh"' in log
    short_web.shot(page, "refreshed")


def test_without_a_renewed_cookie_the_connection_closes_with_3401(short_web: Web) -> None:
    page = short_web.login(unique("otto"), "Otto")
    # The page's renewal is refused (as when the login expired): the gateway closes
    # with 3401 at expiry and the client reconnects (and is refused: logged out).
    page.route("**/login/renew", lambda route: route.fulfill(status=401, body="{}"))
    page.evaluate("""() => {
        window.__codes = [];
        window.roomcast.onState((event) => { if (event.code) window.__codes.push(event.code); });
    }""")
    page.wait_for_function("window.__codes.includes(3401)", timeout=60_000)
    page.wait_for_function(
        "window.__toasts.some((t) => t.text.includes('Token refresh failed'))")
