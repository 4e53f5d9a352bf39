"""roomcast/web/react.js in Chromium: a small React app (React 18 from the npm registry,
installed by ``npm ci`` in tests/js) on a real gateway.

Two users' pages share a group room: messages sent from one show in the other's
``useRoom``; the other's presence goes online, away and offline in ``usePresence``; and
``useWebSocketStatus`` follows a server restart.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.browser.conftest import COOKIE, WEB_ENV, unique
from tests.helpers.gateway import GatewayProcess
from tests.helpers.tokens import make_token

pytestmark = pytest.mark.browser

APP = Path(__file__).resolve().parent / "react_app"
NODE_MODULES = Path(__file__).resolve().parents[1] / "js" / "node_modules"
FILES = {
    "index.html": APP / "index.html",
    "app.js": APP / "app.js",
    "react-shim.js": APP / "react-shim.js",
    "react.development.js": NODE_MODULES / "react" / "umd" / "react.development.js",
    "react-dom.development.js": NODE_MODULES / "react-dom" / "umd" / "react-dom.development.js",
}
TYPES = {".html": "text/html", ".js": "text/javascript"}


@pytest.fixture
def react_gateway() -> Iterator[GatewayProcess]:
    missing = [str(p) for p in FILES.values() if not p.exists()]
    if missing:
        message = f"React not installed (cd tests/js && npm ci): {missing[0]}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    gw = GatewayProcess(env={**WEB_ENV, "ROOMCAST_PRESENCE_GRACE": "1"}).start()
    yield gw
    gw.close()


def serve_app(route: Route) -> None:
    """The app's files, under the gateway's origin (same-origin socket and cookie)."""
    name = route.request.url.split("/react-test/", 1)[1].split("?", 1)[0]
    path = FILES.get(name)
    if path is None:
        route.fulfill(status=404, body="no such file")
        return
    route.fulfill(status=200, body=path.read_bytes(),
                  headers={"Content-Type": TYPES[path.suffix]})


def open_app(browser: Browser, gw: GatewayProcess, me: str, watch: str, room: str,
             errors: list[str]) -> Page:
    context = browser.new_context(base_url=gw.base_url)
    token = make_token(gw.secret, me, name=me.title(), groups=[room.removeprefix("group:")])
    context.add_cookies([{"name": COOKIE, "value": token, "url": gw.base_url, "httpOnly": True}])
    context.route("**/react-test/**", serve_app)
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(f"{me}: {exc}"))
    # The document must come from the gateway itself: Chromium refuses a socket to
    # 127.0.0.1 from a page it did not load from a local address (a routed one).
    page.goto(f"/websocket/status?me={me}&watch={watch}&room={room}")
    page.set_content(FILES["index.html"].read_text())
    return page


def test_react_app_rooms_messages_presence_and_restart(
    browser: Browser, react_gateway: GatewayProcess
) -> None:
    errors: list[str] = []
    room = f"group:{unique('crew')}"
    alice, bob = unique("alice"), unique("bob")
    bob_page = open_app(browser, react_gateway, bob, alice, room, errors)
    expect(bob_page.locator("#status")).to_have_attribute("data-state", "CONNECTED")
    page = open_app(browser, react_gateway, alice, bob, room, errors)
    try:
        status = page.locator("#status")
        expect(status).to_have_attribute("data-state", "CONNECTED")
        expect(page.locator("#joined")).to_have_text("true")
        expect(page.locator("#rooms")).to_have_text(" ".join(sorted([room, f"user:{alice}"])))

        # Presence of the other user: online, away (with the hook's own status), offline.
        expect(page.locator("#presence")).to_have_text("online")
        expect(page.locator("#my-status")).to_have_text("online")
        bob_page.locator("#away").click()
        expect(bob_page.locator("#my-status")).to_have_text("away")
        expect(page.locator("#presence")).to_have_text("away")
        bob_page.locator("#online").click()
        expect(page.locator("#presence")).to_have_text("online")

        # Messages sent through useRoom show in the other page's useRoom, newest first.
        bob_page.locator("#send").click()
        expect(page.locator("#messages li")).to_have_text([f"hello from {bob}"])
        page.locator("#send").click()
        expect(page.locator("#messages li")).to_have_text(
            [f"hello from {alice}", f"hello from {bob}"])
        expect(bob_page.locator("#messages li")).to_have_count(2)

        bob_page.context.close()
        expect(page.locator("#presence")).to_have_text("offline")

        # A server restart: the status hook goes through RECONNECTING back to CONNECTED.
        since = status.get_attribute("data-since")
        react_gateway.stop()
        expect(status).to_have_attribute("data-state", "RECONNECTING")
        # 1001 (going away), or 1006 once an attempt found the server down.
        expect(status).to_have_attribute("data-error", re.compile(r"^100[16]$"))
        expect(page.locator("#rooms")).to_have_text("")
        react_gateway.start()
        expect(status).to_have_attribute("data-state", "CONNECTED", timeout=30_000)
        expect(status).to_have_attribute("data-reconnects", "1")
        assert status.get_attribute("data-since") != since
        expect(page.locator("#joined")).to_have_text("true")
    finally:
        page.context.close()
    assert not errors, errors
