"""The admin dashboard at /admin in real Chromium: access, live counts, tables, forms."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Web, expect_toast, unique

pytestmark = pytest.mark.browser


def test_dashboard_is_for_administrators_only(web: Web) -> None:
    page = web.token_page("mallory", unique("mallory"), path="/admin")
    expect(page.get_by_role("heading", name="Administrators only")).to_be_visible()
    expect(page.locator("#dashboard")).to_be_hidden()
    expect(page.get_by_role("link", name="Log in as an administrator")).to_be_visible()
    # Logged in, though not as an administrator: logging out makes sense.
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    web.shot(page, "denied")


def test_a_visitor_is_offered_the_login_and_no_log_out(web: Web) -> None:
    page = web.new_page("visitor")
    page.goto("/admin")
    expect(page.get_by_role("heading", name="Not logged in")).to_be_visible()
    expect(page.get_by_role("link", name="Log in")).to_be_visible()
    expect(page.get_by_role("button", name="Log out")).to_have_count(0)
    web.shot(page, "visitor")


def test_dashboard_counts_change_as_pages_connect(own_web: Web) -> None:
    web = own_web
    admin = web.token_page("admin", "boss", admin=True, path="/admin?interval=500")
    connections = admin.locator("#stat-connections")
    expect(admin.locator("#health")).to_have_text("healthy")
    expect(connections).to_have_text("0")

    group = unique("red")
    web.login(unique("ann"), "Ann", f"{group}:Red")
    bob = web.login(unique("bob"), "Bob", f"{group}:Red")
    expect(connections).to_have_text("2")
    expect(admin.locator("#stat-rooms")).not_to_have_text("0")
    web.shot(admin, "two-pages")

    bob.context.close()
    expect(connections).to_have_text("1")
    web.shot(admin, "one-page")


def test_dashboard_tables_and_forms(web: Web) -> None:
    user, group, extra = unique("ann"), unique("red"), unique("green")
    ann = web.login(user, "Ann", f"{group}:Red")
    admin = web.token_page("admin", "boss", admin=True, path="/admin?interval=500")

    # Tables, with the API's filters.
    admin.locator("#connections-filter").get_by_label("User id").fill(user)
    admin.locator("#connections-filter").get_by_role("button", name="Filter").click()
    rows = admin.locator("#connections-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(user)
    expect(rows.first).to_contain_text(f"group:{group}")
    # A dev-login user has no character (id 0): the name alone, no "(0)".
    expect(rows.first.locator("td").nth(2)).to_have_text("Ann")
    admin.locator("#rooms-filter select[name=type]").select_option("group")
    admin.locator("#rooms-filter").get_by_role("button", name="Filter").click()
    expect(admin.locator(f"#rooms-table tbody tr[data-id='group:{group}']")).to_contain_text("1")

    # Bad data is refused in the page, before any request.
    form = admin.locator("#send-form")
    form.get_by_label("Data as JSON").fill("{not json")
    form.get_by_role("button", name="Send").click()
    expect(admin.locator("#send-result")).to_contain_text("not valid JSON")
    form.get_by_label("Data as JSON").fill("")

    # Send to a room: the member sees a toast.
    # A label wrapping a <select> is named by its options too: pick selects by name.
    form.locator("select[name=target]").select_option("room")
    form.get_by_label("Id", exact=True).fill(f"group:{group}")
    form.locator("select[name=type]").select_option("notification")
    text = f"Standup in 5 ({unique('n')})"
    form.get_by_label("Message", exact=True).fill(text)
    form.get_by_role("button", name="Send").click()
    expect(admin.locator("#send-result")).to_contain_text("Sent to 1 recipient")
    expect_toast(ann, "info", text)

    # Group membership: the user's open page gains and loses the room live.
    groups = admin.locator("#groups-form")
    groups.get_by_label("User id").fill(user)
    groups.get_by_label("Group id").fill(extra)
    groups.get_by_label("Group name").fill("Green")
    groups.get_by_role("button", name="Add to group").click()
    expect(admin.locator("#groups-result")).to_contain_text("Added")
    expect(ann.locator(f"#room-list li[data-room='group:{extra}']")).to_contain_text("Green")
    web.shot(ann, "member-added")
    groups.get_by_role("button", name="Remove from group").click()
    expect(admin.locator("#groups-result")).to_contain_text("Removed")
    expect(ann.locator(f"#room-list li[data-room='group:{extra}']")).to_have_count(0)
    web.shot(admin, "dashboard")
