"""History fields in Chromium: the Go gateway's React client is unaffected by them, and
client.js recovers what it missed across a server restart.

Publications of rooms with history carry ``offset`` and ``epoch``, and ``room_joined``
carries the room's position; the React client ignores fields it does not know, so its
rooms, replies and message handlers work as before. client.js hands its positions
over when it reconnects and gets the missed publications replayed, once each, in order.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.browser.conftest import COOKIE, admin_headers, unique
from tests.cluster.support import Cluster
from tests.helpers.fixtures_redis import ClusterFactory
from tests.helpers.gateway import GatewayProcess
from tests.helpers.tokens import make_token

pytestmark = [pytest.mark.browser, pytest.mark.redis]

#: The React client's connection manager, reduced to what meets the envelopes: it parses
#: each frame, resolves a pending send on any reply with its id, tracks its rooms from
#: room_joined / room_left (data.room), and hands every other message to the handlers of
#: its type. Nothing reads fields it does not know.
REACT_MANAGER = """(url) => {
  const state = { rooms: [], replies: {}, byType: {}, raw: [] };
  window.__react = state;
  const pending = new Map();
  const ws = new WebSocket(url);
  const handlers = {
    room_joined: (m) => { state.rooms.push(m.data.room); },
    room_left: (m) => { state.rooms = state.rooms.filter((r) => r !== m.data.room); },
  };
  ws.addEventListener("message", (e) => {
    const msg = JSON.parse(e.data);
    state.raw.push(msg);
    if (msg.id && pending.has(msg.id)) {
      pending.get(msg.id)(msg);
      pending.delete(msg.id);
      return;
    }
    if (handlers[msg.type]) handlers[msg.type](msg);
    (state.byType[msg.type] ??= []).push({ room: msg.room, data: msg.data });
  });
  let n = 0;
  window.__send = (message) => new Promise((resolve, reject) => {
    const id = `react_${++n}`;
    const timer = setTimeout(() => reject(new Error("Message timeout")), 10000);
    pending.set(id, (reply) => { clearTimeout(timer); resolve(reply); });
    ws.send(JSON.stringify({ ...message, id }));
  });
  window.__open = new Promise((resolve) => ws.addEventListener("open", resolve));
}"""

#: client.js on a page of the gateway's origin, recording what it hands the app.
CLIENT_JS = """async () => {
  const { RoomcastClient } = await import("/websocket/client.js");
  const backoff = { initial: 100, factor: 1.5, max: 500, jitter: 0 };
  const client = new RoomcastClient({ backoff });
  const app = { seqs: [], recoveries: [], connects: 0 };
  window.__app = app;
  client.on("notification", (m) => {
    if (typeof m.data.seq === "number") app.seqs.push(m.data.seq);
  });
  client.onRecovery(({ room, recovered, reason, replayed }) => {
    app.recoveries.push({ room, recovered, reason, replayed });
  });
  client.onState((s) => { if (s.state === "connected") app.connects += 1; });
  client.connect();
  window.__client = client;
}"""


@pytest.fixture
def pair(redis_cluster: ClusterFactory) -> Cluster:
    return redis_cluster()


def _page(browser: Browser, gw: GatewayProcess, user: str, groups: list[str]) -> Page:
    ctx = browser.new_context(base_url=gw.base_url)
    ctx.add_cookies([{"name": COOKIE, "value": make_token(gw.secret, user, groups=groups),
                      "url": gw.base_url, "httpOnly": True}])
    page = ctx.new_page()
    page.goto("/healthz")  # a document of the gateway's origin: the cookie goes along
    return page


def _post(gw: GatewayProcess, path: str, data: dict[str, Any], status: int = 200) -> None:
    r = httpx.post(f"{gw.base_url}{path}", json={"type": "notification", "data": data},
                   headers=admin_headers(gw), timeout=30)
    assert r.status_code == status, r.text


def test_the_react_client_works_with_offsets_and_epochs(browser: Browser,
                                                        pair: Cluster) -> None:
    gw = pair.gateways[0]
    group, user = unique("crew"), unique("react")
    room = f"group:{group}"
    page = _page(browser, gw, user, [group])
    try:
        page.evaluate(REACT_MANAGER, gw.ws_url)
        page.wait_for_function("(room) => window.__react.rooms.includes(room)", arg=room)
        joined = page.evaluate(
            "(room) => window.__react.raw.find((m) => m.type === 'room_joined'"
            " && m.data.room === room)", room)
        assert isinstance(joined["data"].get("epoch"), str), joined  # the new fields...
        assert isinstance(joined["data"].get("offset"), int), joined
        assert sorted(page.evaluate("window.__react.rooms")) == sorted([room, f"user:{user}"])

        # ...and its own send resolves on the ack, as before.
        reply = page.evaluate("(room) => window.__send({type: 'message', room,"
                              " data: {text: 'hi'}})", room)
        assert reply["type"] == "system" and reply["data"]["status"] == "ok", reply

        # The API's room and user messages reach its type handlers unchanged.
        _post(pair.gateways[1], f"/websocket/rooms/{room}/message", {"text": "to the room"})
        _post(pair.gateways[1], f"/websocket/users/{user}/message", {"text": "to me"})
        page.wait_for_function("(window.__react.byType.notification || []).length === 2")
        got = page.evaluate("window.__react.byType.notification")
        assert [m["data"]["text"] for m in got] == ["to the room", "to me"], got
        raw = page.evaluate("window.__react.raw.filter((m) => m.type === 'notification'"
                            " || m.type === 'message')")
        for message in raw:  # they did carry the new fields
            assert isinstance(message.get("offset"), int), message
            assert isinstance(message.get("epoch"), str), message
        assert [m["room"] for m in raw] == [room, room, f"user:{user}"], raw
        assert raw[1]["offset"] == raw[0]["offset"] + 1, raw
    finally:
        page.context.close()


def test_client_js_recovers_what_it_missed_across_a_server_restart(browser: Browser,
                                                                   pair: Cluster) -> None:
    a, b = pair.gateways
    group = unique("crew")
    room = f"group:{group}"
    page = _page(browser, a, unique("js"), [group])
    try:
        page.evaluate(CLIENT_JS)
        page.wait_for_function("window.__app.connects === 1")
        page.wait_for_function("(room) => window.__client.rooms.has(room)", arg=room)
        for seq in range(3):
            _post(a, f"/websocket/rooms/{room}/message", {"seq": seq})
        page.wait_for_function("window.__app.seqs.length === 3")

        a.stop()  # 1001: client.js reconnects, and finds the server down for a while
        for seq in range(3, 8):  # published while it is away, through the other instance:
            # nobody is connected, so the answer is 202 (stored in the room's history)
            _post(b, f"/websocket/rooms/{room}/message", {"seq": seq}, 202)
        a.start()  # the same port
        page.wait_for_function("(room) => window.__app.recoveries.some((r) => r.room === room)",
                               arg=room, timeout=60_000)
        _post(a, f"/websocket/rooms/{room}/message", {"seq": 8})
        page.wait_for_function("window.__app.seqs.includes(8)")

        app = page.evaluate("window.__app")
        assert app["seqs"] == list(range(9)), app
        # Nor did the server send one twice (client.js would have hidden it from the app).
        assert page.evaluate("window.__client._positions.stats.duplicates") == 0
        outcome = [r for r in app["recoveries"] if r["room"] == room]
        assert outcome == [{"room": room, "recovered": True, "reason": "recovered",
                            "replayed": 5}], app
    finally:
        page.context.close()


#: client.js with recent messages on: what the room's list holds, after each change.
RECENT_JS = """async (room) => {
  const { RoomcastClient } = await import("/websocket/client.js");
  const client = new RoomcastClient({ recent: 10 });
  window.__recent = [];
  client.onRecent((change) => {
    if (change.room === room) window.__recent = change.messages.map((m) => m.data.text);
  });
  client.connect();
}"""


def test_recent_messages_are_filled_from_the_history_on_join(browser: Browser,
                                                             pair: Cluster) -> None:
    a = pair.gateways[0]
    group = unique("crew")
    room = f"group:{group}"
    for i in range(3):  # before anyone is in the room: stored only (202)
        r = httpx.post(f"{a.base_url}/websocket/rooms/{room}/message",
                       json={"type": "message", "data": {"text": f"earlier {i}"}},
                       headers=admin_headers(a), timeout=30)
        assert r.status_code == 202, r.text
    page = _page(browser, a, unique("late"), [group])
    try:
        page.evaluate(RECENT_JS, room)
        page.wait_for_function("window.__recent.length === 3")
        assert page.evaluate("window.__recent") == ["earlier 0", "earlier 1", "earlier 2"]
        r = httpx.post(f"{a.base_url}/websocket/rooms/{room}/message",
                       json={"type": "message", "data": {"text": "live"}},
                       headers=admin_headers(a), timeout=30)
        assert r.status_code == 200, r.text
        page.wait_for_function("window.__recent.length === 4")
        assert page.evaluate("window.__recent") == [
            "earlier 0", "earlier 1", "earlier 2", "live"]
    finally:
        page.context.close()
