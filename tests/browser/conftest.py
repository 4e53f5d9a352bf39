"""Real headless Chromium (Debian's, never a download) driving the demo and admin pages."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

from tests.helpers.gateway import GatewayProcess
from tests.helpers.tokens import make_token

CHROMIUM = os.environ.get("ROOMCAST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
WEB_ENV = {"ROOMCAST_DEV_LOGIN": "on", "ROOMCAST_DEMO": "on"}
ADMIN_SCOPE = "websocket:admin"
COOKIE = "falcon_auth_token"

# Events are awaited with expect(); this bounds each wait, it asserts no timing.
expect.set_options(timeout=30_000)

# Every toast a page shows, kept after the toast itself times out: a busy machine may look
# later than the toast's few seconds on screen.
TOAST_RECORDER = """
window.__toasts = [];
new MutationObserver((records) => {
  for (const record of records) for (const node of record.addedNodes) {
    if (node.classList && node.classList.contains("toast")) {
      window.__toasts.push({ kind: node.dataset.kind, text: node.textContent });
    }
  }
}).observe(document, { childList: true, subtree: true });
"""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember each phase's outcome so the fixtures can screenshot failures."""
    report = yield
    setattr(item, f"rep_{call.when}", report)
    return report


def unique(prefix: str) -> str:
    """An id no other test uses (the module's gateway keeps memberships)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} missing: the test command must apt-get install chromium")
        pytest.skip(f"{CHROMIUM} missing (apt-get install chromium)")
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


def web_gateway() -> GatewayProcess:
    """A gateway with the dev login and the demo turned on (a JWT_SECRET is set)."""
    return GatewayProcess(env=WEB_ENV).start()


@pytest.fixture(scope="module")
def gateway() -> Iterator[GatewayProcess]:
    """One web-enabled gateway shared by a test module (tests use unique user ids)."""
    gw = web_gateway()
    yield gw
    gw.close()


@pytest.fixture
def own_gateway() -> Iterator[GatewayProcess]:
    """A web-enabled gateway of this test's own, to stop, restart or count exactly."""
    gw = web_gateway()
    yield gw
    gw.close()


@dataclass
class Web:
    """Browser sessions against one gateway; screenshots go to artifacts/screenshots/."""

    browser: Browser
    gateway: GatewayProcess
    test_name: str
    contexts: list[BrowserContext] = field(default_factory=list)
    pages: dict[str, Page] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def new_page(self, label: str, *, width: int = 1280, height: int = 800) -> Page:
        context = self.browser.new_context(
            base_url=self.gateway.base_url, viewport={"width": width, "height": height}
        )
        self.contexts.append(context)
        page = context.new_page()
        page.add_init_script(TOAST_RECORDER)
        page.on("pageerror", lambda exc: self.errors.append(f"{label}: {exc}"))
        self.pages[label] = page
        return page

    def login(self, user_id: str, name: str, groups: str = "", *, admin: bool = False,
              width: int = 1280, height: int = 800) -> Page:
        """Log in through the dev login form; returns the demo page, connected."""
        page = self.new_page(user_id, width=width, height=height)
        page.goto("/login")
        page.get_by_label("User id").fill(user_id)
        page.get_by_label("Display name").fill(name)
        page.get_by_label("Groups").fill(groups)
        if admin:
            page.get_by_label("Administrator").check()
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{self.gateway.base_url}/")
        expect(page.locator("#badge")).to_have_text("connected")
        return page

    def token_page(self, label: str, user_id: str, *, admin: bool = False, path: str = "/",
                   width: int = 1280, height: int = 900) -> Page:
        """A page whose cookie is a minted token (no login form, no demo connection)."""
        page = self.new_page(label, width=width, height=height)
        token = make_token(self.gateway.secret, user_id, name=label,
                           scopes=ADMIN_SCOPE if admin else "")
        page.context.add_cookies([{"name": COOKIE, "value": token, "url": self.gateway.base_url,
                                   "httpOnly": True}])
        page.goto(path)
        return page

    def shot(self, page: Page, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{self.test_name}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def web(browser: Browser, gateway: GatewayProcess, request: pytest.FixtureRequest) -> Iterator[Web]:
    yield from _web(browser, gateway, request)


@pytest.fixture
def own_web(browser: Browser, own_gateway: GatewayProcess,
            request: pytest.FixtureRequest) -> Iterator[Web]:
    yield from _web(browser, own_gateway, request)


def _web(
    browser: Browser, gateway: GatewayProcess, request: pytest.FixtureRequest
) -> Iterator[Web]:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    session = Web(browser, gateway, name)
    yield session
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        for label, page in session.pages.items():
            if not page.is_closed():
                session.shot(page, f"FAILED-{label}")
    session.close()
    # An uncaught exception in a page is a bug even when the assertions passed.
    assert not session.errors, f"JavaScript errors in the pages: {session.errors}"


def admin_headers(gateway: GatewayProcess) -> dict[str, str]:
    token = make_token(gateway.secret, "test-admin", scopes=ADMIN_SCOPE)
    return {"Authorization": f"Bearer {token}"}


def expect_toast(page: Page, kind: str, text: str) -> None:
    """Wait until ``page`` has shown a ``kind`` toast containing ``text`` (even if gone)."""
    page.wait_for_function(
        "([kind, text]) => window.__toasts.some((t) => t.kind === kind && t.text.includes(text))",
        arg=[kind, text],
        timeout=30_000,
    )


def record_messages(page: Page) -> None:
    """Keep every message the page's client receives from now on in ``window.__seen``."""
    page.evaluate(
        "() => { window.__seen = []; window.roomcast.on('*', (m) => window.__seen.push(m)); }"
    )


def seen_texts(page: Page) -> list[str]:
    return list(page.evaluate(
        "() => window.__seen.filter((m) => m.type === 'message').map((m) => m.data.text)"
    ))

