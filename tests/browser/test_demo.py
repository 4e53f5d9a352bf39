"""The demo app at / in real Chromium: login, badge, rooms, toasts, feeds, reconnect."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import (
    COOKIE,
    Web,
    admin_headers,
    expect_toast,
    record_messages,
    seen_texts,
    unique,
)

pytestmark = pytest.mark.browser


def room_item(page: Page, room: str) -> Locator:
    return page.locator(f"#room-list li[data-room='{room}']")


def post(page: Page, room: str, text: str) -> None:
    """Pick ``room`` in the list and send ``text`` from the composer."""
    room_item(page, room).get_by_role("button").click()
    expect(page.locator("#room-title")).to_contain_text(room)
    page.get_by_label("Message").fill(text)
    page.get_by_label("Message").press("Enter")


def test_login_sets_cookie_connects_and_lists_rooms(web: Web) -> None:
    user, group = unique("ann"), unique("red")
    page = web.login(user, "Ann", f"{group}:Red team")

    cookie = next(c for c in page.context.cookies() if c["name"] == COOKIE)
    assert cookie["httpOnly"], "the auth cookie must be HttpOnly"
    assert COOKIE not in page.evaluate("document.cookie"), "page scripts must not see the token"

    expect(page.locator("#badge")).to_have_text("connected")
    expect(room_item(page, f"group:{group}")).to_contain_text("Red team")
    expect(room_item(page, f"user:{user}")).to_contain_text("Personal")
    # The group room is opened by default and lists who is online in it.
    expect(page.locator("#room-title")).to_contain_text(f"group:{group}")
    expect(page.locator("#member-list")).to_contain_text("Ann (me)")
    # The server's welcome is a system_notification: it shows as a toast.
    expect_toast(page, "system", "Connected to WebSocket")
    web.shot(page, "connected")


def test_not_logged_in_page_offers_the_login(web: Web) -> None:
    page = web.new_page("anonymous")
    page.goto("/")
    expect(page.get_by_role("link", name="Log in")).to_be_visible()
    expect(page.locator("#badge")).to_have_text("offline")
    expect(page.locator("#app")).to_be_hidden()
    web.shot(page, "anonymous")


def test_login_page_loads_without_an_error_in_the_console(web: Web) -> None:
    page = web.new_page("login-page")
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto("/login", wait_until="networkidle")
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    assert errors == []  # the browser's own /favicon.ico 404 shows only in the console


def test_toasts_never_cover_who_is_online(web: Web) -> None:
    user, group = unique("tia"), unique("red")
    page = web.login(user, "Tia", f"{group}:Red")
    expect(page.locator("#member-list")).to_contain_text("Tia (me)")
    base, headers = web.gateway.base_url, admin_headers(web.gateway)
    marker = unique("t")
    for n in range(4):
        text = f"Notice {n} of four, long enough ({marker})"
        reply = httpx.post(f"{base}/websocket/users/{user}/message", headers=headers, timeout=10,
                           json={"type": "notification", "data": {"message": text}})
        assert reply.status_code == 200, reply.text
    # Critical toasts stay until dismissed, so the check cannot race their timeout.
    alert = f"Stays on screen ({marker})"
    reply = httpx.post(f"{base}/websocket/broadcast", headers=headers, timeout=10,
                       json={"type": "critical_alert", "data": {"message": alert}})
    assert reply.status_code == 200, reply.text
    expect(page.get_by_role("alert").filter(has_text=alert)).to_be_visible()
    covered = page.evaluate("""() => {
        const boxes = (sel) =>
          [...document.querySelectorAll(sel)].map((e) => e.getBoundingClientRect());
        const meets = (a, b) =>
          a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
        const online = boxes("#online-title, #member-list li");
        return boxes(".toast").filter((t) => online.some((o) => meets(t, o))).length;
    }""")
    assert covered == 0
    web.shot(page, "toasts-beside-online")


def test_admin_broadcast_and_critical_alert_appear_as_toasts(web: Web) -> None:
    page = web.login(unique("dan"), "Dan")
    base, headers = web.gateway.base_url, admin_headers(web.gateway)
    text = f"Maintenance at 18:00 ({unique('n')})"
    reply = httpx.post(f"{base}/websocket/broadcast", headers=headers, timeout=10,
                       json={"type": "notification", "data": {"message": text}})
    assert reply.status_code == 200, reply.text
    expect_toast(page, "info", text)

    alert = f"Database down ({unique('a')})"
    reply = httpx.post(f"{base}/websocket/broadcast", headers=headers, timeout=10,
                       json={"type": "critical_alert", "data": {"message": alert}})
    assert reply.status_code == 200, reply.text
    expect(page.get_by_role("alert").filter(has_text=alert)).to_be_visible()
    web.shot(page, "toasts")


def test_group_message_reaches_group_members_only(web: Web) -> None:
    red, blue = unique("red"), unique("blue")
    ann = web.login(unique("ann"), "Ann", f"{red}:Red, {blue}:Blue")
    bob = web.login(unique("bob"), "Bob", f"{red}:Red")
    carol = web.login(unique("carol"), "Carol", f"{blue}:Blue")
    for page, group in ((bob, red), (carol, blue)):
        expect(page.locator("#room-title")).to_contain_text(f"group:{group}")
        record_messages(page)

    secret = f"for red only {unique('m')}"
    post(ann, f"group:{red}", secret)
    expect(bob.locator("#feed li", has_text=secret)).to_contain_text("Ann")
    expect(ann.locator("#feed li.mine", has_text=secret)).to_contain_text("me")

    # A later message to Carol's room: she gets it on the same connection after
    # anything addressed to her before, so a leak of the red message would be here by now.
    marker = f"for blue {unique('m')}"
    post(ann, f"group:{blue}", marker)
    expect(carol.locator("#feed li", has_text=marker)).to_be_visible()
    assert secret not in seen_texts(carol)
    expect(carol.locator("body")).not_to_contain_text(secret)
    # And the other way round: Bob is not in blue.
    post(ann, f"group:{red}", f"second red {marker}")
    expect(bob.locator("#feed li", has_text=f"second red {marker}")).to_be_visible()
    assert marker not in seen_texts(bob)

    for label, page in (("ann", ann), ("bob", bob), ("carol", carol)):
        web.shot(page, label)


def test_page_reconnects_by_itself_after_a_server_restart(own_web: Web) -> None:
    web = own_web
    group = unique("ops")
    page = web.login(unique("eve"), "Eve", f"{group}:Ops")
    expect(page.locator("#room-title")).to_contain_text(f"group:{group}")
    page.evaluate("() => { window.__states = []; "
                  "window.roomcast.onState((e) => window.__states.push(e.state)); }")

    web.gateway.stop()  # SIGTERM: clients get 1001 and retry with backoff
    expect(page.locator("#badge")).to_have_text("reconnecting")
    expect(page.locator("#room-list li")).to_have_count(0)

    # Sent while the server is down: queued, sent once after the reconnect.
    page.get_by_label("Message").fill("written while offline")
    page.get_by_label("Message").press("Enter")
    expect(page.locator("#composer-note")).to_contain_text("queued")
    web.shot(page, "down")

    web.gateway.start()  # same port, same secret, same membership database
    expect(page.locator("#badge")).to_have_text("connected", timeout=60_000)
    expect(room_item(page, f"group:{group}")).to_be_visible()
    expect(page.locator("#feed li", has_text="written while offline")).to_be_visible()
    page.get_by_label("Message").fill("after the restart")
    page.get_by_label("Message").press("Enter")
    expect(page.locator("#feed li", has_text="after the restart")).to_be_visible()
    # Delivered in order on one connection: a second copy would be in the feed by now.
    expect(page.locator("#feed li", has_text="written while offline")).to_have_count(1)
    states = page.evaluate("window.__states")
    assert states[0] == "reconnecting" and states[-1] == "connected", states
    web.shot(page, "reconnected")


def test_demo_on_a_phone_screen(web: Web) -> None:
    group = unique("red")
    page = web.login(unique("phil"), "Phil", f"{group}:Red", width=390, height=800)
    expect(room_item(page, f"group:{group}")).to_be_visible()
    # Nothing overflows sideways on a narrow screen.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    web.shot(page, "phone")
