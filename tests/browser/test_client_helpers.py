"""client.js's helpers in Chromium, on the demo page's client (``window.roomcast``):
joinRoom/leaveRoom, the status object, presence (follow, set status, refused stranger)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Web, unique

pytestmark = pytest.mark.browser


def test_join_leave_status_and_presence(web: Web) -> None:
    group = unique("red")
    room = f"group:{group}"
    ann_id, bob_id = unique("ann"), unique("bob")
    ann = web.login(ann_id, "Ann", f"{group}:Red")
    bob = web.login(bob_id, "Bob", f"{group}:Red")
    stranger = web.login(unique("eve"), "Eve", f"{unique('other')}:Other")

    status = ann.evaluate("() => ({...window.roomcast.status,"
                          " since: window.roomcast.status.connectionTime instanceof Date})")
    assert status["state"] == "connected" and status["since"] is True
    assert status["reconnectAttempts"] == 0 and status["lastError"] is None

    # leaveRoom / joinRoom: the demo's room list follows.
    ack = ann.evaluate("(room) => window.roomcast.leaveRoom(room).then((m) => m.data)", room)
    assert ack["joined"] is False
    expect(ann.locator(f"#room-list li[data-room='{room}']")).to_have_count(0)
    ack = ann.evaluate("(room) => window.roomcast.joinRoom(room).then((m) => m.data)", room)
    assert ack["joined"] is True
    expect(ann.locator(f"#room-list li[data-room='{room}']")).to_have_count(1)

    # Presence: Ann follows Bob, Bob goes away with a note, then back.
    first = ann.evaluate("(id) => window.roomcast.presence.subscribe(id).ready", bob_id)
    assert first["status"] == "online" and first["userId"] == bob_id
    bob.evaluate("() => window.roomcast.presence.setStatus('away', {note: 'lunch'})")
    ann.wait_for_function(
        "(id) => window.roomcast.presence.get(id)?.status === 'away'", arg=bob_id)
    assert ann.evaluate("(id) => window.roomcast.presence.get(id).metadata", bob_id) == {
        "note": "lunch"}
    bob.evaluate("() => window.roomcast.presence.setStatus('online')")
    ann.wait_for_function(
        "(id) => window.roomcast.presence.online().some((p) => p.userId === id)", arg=bob_id)

    # A user sharing no room with Bob is refused.
    code = stranger.evaluate(
        "(id) => window.roomcast.presence.subscribe(id).ready.then(() => 'ok', (e) => e.code)",
        bob_id)
    assert code == "forbidden"


def test_demo_member_list_shows_presence(web: Web) -> None:
    group = unique("blue")
    room = f"group:{group}"
    ann_id, bob_id = unique("ann"), unique("bob")
    ann = web.login(ann_id, "Ann", f"{group}:Blue")
    bob = web.login(bob_id, "Bob", f"{group}:Blue")
    ann.locator(f"#room-list li[data-room='{room}'] button").click()
    bob_row = ann.locator(f"#member-list li[data-user='{bob_id}']")
    expect(bob_row).to_have_attribute("data-status", "online")
    bob.locator("#my-status").select_option("away")
    expect(bob_row).to_have_attribute("data-status", "away")
    web.shot(ann, "presence")
    bob.locator("#my-status").select_option("offline")  # invisible
    expect(bob_row).to_have_attribute("data-status", "offline")
