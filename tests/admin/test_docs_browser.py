"""The interactive docs page in real headless Chromium: render the spec, send calls."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from roomcast.auth import COOKIE_NAME
from roomcast.server.admin.routes import OPERATIONS
from tests.admin.support import ADMIN_SCOPE, API_KEY
from tests.helpers.gateway import GatewayProcess
from tests.helpers.tokens import make_token

pytestmark = pytest.mark.browser
CHROMIUM = os.environ.get("ROOMCAST_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} missing: the test command must apt-get install chromium")
        pytest.skip(f"{CHROMIUM} missing (apt-get install chromium)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


def _open(browser: Browser, gw: GatewayProcess, cookie: str | None = None) -> tuple[Page,
                                                                                 list[str]]:
    context = browser.new_context()
    if cookie is not None:
        context.add_cookies([{"name": COOKIE_NAME, "value": cookie, "url": gw.base_url}])
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.goto(f"{gw.base_url}/websocket/docs")
    # + status, healthz, readyz, metrics and the token refresh
    expect(page.locator("details.op")).to_have_count(len(OPERATIONS) + 5)
    return page, problems


def _send(page: Page, path: str, method: str = "POST") -> str:
    op = page.locator("details.op").filter(
        has=page.locator("summary", has_text=method)).filter(
        has=page.locator(f'summary code:text-is("{path}")'))
    op.locator("summary").click()
    op.locator("button").click()
    status = op.locator(".output .status")
    expect(status).to_be_visible()
    return status.inner_text()


def test_docs_send_with_the_admin_cookie(browser: Browser, admin_gw: GatewayProcess) -> None:
    admin = make_token(admin_gw.secret, "docs-admin", scopes=ADMIN_SCOPE)
    page, problems = _open(browser, admin_gw, cookie=admin)
    assert _send(page, "/websocket/broadcast") == "200 OK"
    expect(page.locator(".output pre").first).to_contain_text('"success": true')
    assert problems == []
    page.context.close()


def test_docs_send_with_an_api_key_or_nothing(browser: Browser,
                                              admin_gw: GatewayProcess) -> None:
    page, problems = _open(browser, admin_gw)
    assert _send(page, "/websocket/rooms", "GET").startswith("401")
    page.fill("#api-key", API_KEY)
    assert _send(page, "/websocket/connections", "GET") == "200 OK"
    # The 401 above is the one console error: the browser logs every failed fetch.
    assert all("401" in p for p in problems), problems
    page.context.close()
