"""The admin dashboard's live view in Chromium: figures and charts pushed over the admin
socket move when clients connect and messages flow, on one gateway and on a two-instance
Redis cluster; one room's traffic tailed, bodies shown to administrators only.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

from tests.browser.conftest import ADMIN_SCOPE, WEB_ENV, Web, admin_headers, unique
from tests.helpers.gateway import GatewayProcess
from tests.helpers.redis_server import RedisServer, redis_server_binary
from tests.helpers.tokens import make_token

pytestmark = pytest.mark.browser

NOT_ZERO = re.compile(r"^(?!0$)\d")
LIVE = "/websocket/admin/live"
API_KEY = "live-api-key-0123456789abcdef"


def live_url(gw: GatewayProcess) -> str:
    return gw.ws_url.replace("/websocket/connect", LIVE)


def client(stack: ExitStack, gw: GatewayProcess, user: str, groups: list[str]) -> None:
    """A client connection kept open until ``stack`` closes."""
    token = make_token(gw.secret, user, groups=groups)
    ws = stack.enter_context(connect(
        gw.ws_url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10))
    ws.recv(timeout=10)  # the welcome


def refused(url: str, **kw: Any) -> int:
    with pytest.raises(InvalidStatus) as caught, connect(url, open_timeout=10, **kw):
        pass
    return caught.value.response.status_code


def post(gw: GatewayProcess, room: str, text: str) -> None:
    r = httpx.post(f"{gw.base_url}/websocket/rooms/{room}/message", headers=admin_headers(gw),
                   json={"type": "message", "data": {"text": text}}, timeout=10)
    assert r.status_code == 200, r.text


def chart(admin: Page, server: str, metric: str) -> str:
    return f"#charts-table tr[data-server='{server}'] svg[data-metric='{metric}']"


def test_figures_charts_and_tail_move_with_the_traffic(own_web: Web) -> None:
    web = own_web
    gw = web.gateway
    admin = web.token_page("admin", "boss", admin=True, path="/admin")
    expect(admin.locator("#live-state")).to_have_text("live")
    expect(admin.locator("#health")).to_have_text("healthy")
    expect(admin.locator("#stat-connections")).to_have_text("0")
    rows = admin.locator("#charts-table tbody tr")
    expect(rows).to_have_count(1)
    server = rows.first.get_attribute("data-server")
    assert server

    group = unique("red")
    room = f"group:{group}"
    web.login(unique("ann"), "Ann", f"{group}:Red")
    expect(admin.locator("#stat-connections")).to_have_text("1")
    expect(admin.locator(chart(admin, server, "connections"))).to_have_attribute("data-max", "1")
    # The tables follow the pushed counts, without a timer.
    expect(admin.locator("#connections-table tbody tr")).to_have_count(1)

    admin.locator("#tail-form").get_by_label("Room id").fill(room)
    admin.locator("#tail-form").get_by_role("button", name="Tail").click()
    expect(admin.locator("#tail-state")).to_have_text(f"tailing {room}")
    for i in range(5):
        post(gw, room, f"standup {i}")
    tail = admin.locator("#tail-table tbody tr")
    expect(tail).to_have_count(5)
    expect(tail.first).to_contain_text('"text":"standup 4"')
    expect(admin.locator(chart(admin, server, "messages"))).to_have_attribute("data-max", NOT_ZERO)
    expect(admin.locator(chart(admin, server, "deliveries"))).to_have_attribute(
        "data-max", NOT_ZERO)
    web.shot(admin, "live")

    admin.locator("#tail-stop").click()
    expect(admin.locator("#tail-state")).to_have_text("stopped")
    post(gw, room, "after the stop")
    post(gw, room, "after the stop, again")
    # Both arrived (the member's page shows them), none in the tail.
    expect(admin.locator("#tail-table tbody tr")).to_have_count(5)


def test_the_live_socket_is_for_administrators_and_bodies_for_admins_only(
    web: Web,
) -> None:
    gw = web.gateway
    plain = make_token(gw.secret, unique("mallory"))
    assert refused(live_url(gw), additional_headers={"Authorization": f"Bearer {plain}"}) == 403
    assert refused(live_url(gw)) == 401
    admin = make_token(gw.secret, "boss", scopes=ADMIN_SCOPE)
    cookie = {"Cookie": f"falcon_auth_token={admin}"}
    assert refused(live_url(gw), additional_headers=cookie,
                   origin=Origin("https://evil.example")) == 403

    # An admin token sees bodies in the tail.
    group = unique("g")
    with ExitStack() as stack:
        client(stack, gw, unique("m"), [group])
        viewer = stack.enter_context(
            connect(live_url(gw), additional_headers={"Authorization": f"Bearer {admin}"}))
        snapshot = json.loads(viewer.recv(timeout=10))
        assert snapshot["type"] == "snapshot" and snapshot["server_id"] in snapshot["series"]
        viewer.send(json.dumps({"action": "tail", "room": f"group:{group}"}))
        assert json.loads(next_of(viewer, "tailing"))["room"] == f"group:{group}"
        post(gw, f"group:{group}", "secret plans")
        tailed = json.loads(next_of(viewer, "tail"))
        assert tailed["message"]["data"] == {"text": "secret plans"}
        assert tailed["message"]["type"] == "message" and tailed["message"]["size"] > 0
        viewer.send("not json")
        assert json.loads(next_of(viewer, "error"))["message"] == "invalid JSON"


def next_of(ws: ClientConnection, kind: str) -> str:
    while True:
        raw = ws.recv(timeout=10)
        assert isinstance(raw, str)
        if json.loads(raw)["type"] == kind:
            return raw


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    if redis_server_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("no redis-server binary on PATH")
        pytest.skip("no redis-server binary on PATH")
    with RedisServer(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def pair(redis: RedisServer) -> Iterator[list[GatewayProcess]]:
    secret = "live-cluster-secret-0123456789abcdef"
    gws = [GatewayProcess(env={**WEB_ENV, "REDIS_URL": redis.url, "JWT_SECRET": secret,
                               "ROOMCAST_API_KEY": API_KEY,
                               "ROOMCAST_SERVER_ID": f"{name}-{uuid.uuid4().hex[:8]}"})
           for name in ("alpha", "beta")]
    try:
        for gw in gws:
            gw.start()
        yield gws
    finally:
        for gw in gws:
            gw.close()


def test_two_instances_on_redis_each_with_its_charts(browser: object, pair: list[GatewayProcess],
                                                     request: pytest.FixtureRequest) -> None:
    from tests.browser.conftest import _web

    alpha, beta = pair
    beta_id = beta.env["ROOMCAST_SERVER_ID"]
    alpha_id = alpha.env["ROOMCAST_SERVER_ID"]
    for web in _web(browser, alpha, request):  # type: ignore[arg-type]
        admin = web.token_page("admin", "boss", admin=True, path="/admin")
        expect(admin.locator("#live-state")).to_have_text("live")
        expect(admin.locator("#charts-table tbody tr")).to_have_count(2)
        expect(admin.locator(f"#charts-table tr[data-server='{alpha_id}']")).to_have_count(1)

        group = unique("blue")
        room = f"group:{group}"
        admin.locator("#tail-form").get_by_label("Room id").fill(room)
        admin.locator("#tail-form").get_by_role("button", name="Tail").click()
        expect(admin.locator("#tail-state")).to_have_text(f"tailing {room}")

        with ExitStack() as stack:
            for _ in range(2):
                client(stack, beta, unique("b"), [group])
            # An app backend (API key) may watch too, without the message bodies.
            backend = stack.enter_context(
                connect(live_url(alpha), additional_headers={"X-API-Key": API_KEY}))
            backend.send(json.dumps({"action": "tail", "room": room}))
            next_of(backend, "tailing")
            expect(admin.locator("#stat-connections")).to_have_text("2")
            row = admin.locator(f"#charts-table tr[data-server='{beta_id}']")
            expect(row.locator("output[data-metric='connections']")).to_have_text("2")
            expect(admin.locator(chart(admin, alpha_id, "connections"))).to_have_attribute(
                "data-max", "0")
            for i in range(3):
                post(beta, room, f"on beta {i}")
            expect(admin.locator(chart(admin, beta_id, "messages"))).to_have_attribute(
                "data-max", NOT_ZERO)
            expect(admin.locator(chart(admin, beta_id, "deliveries"))).to_have_attribute(
                "data-max", NOT_ZERO)
            # Published on beta, tailed on alpha (compat mode: every instance sees rooms).
            # (The tail shows the room's room_update events as well.)
            tailed = admin.locator("#tail-table tbody tr").filter(has_text="on beta")
            expect(tailed).to_have_count(3)
            expect(tailed.first).to_contain_text("on beta 2")
            web.shot(admin, "two-instances")
            seen = json.loads(next_of(backend, "tail"))["message"]
            while seen["type"] != "message":  # room_update events of the room come too
                seen = json.loads(next_of(backend, "tail"))["message"]
            assert "data" not in seen and seen["size"] > 0, seen
        expect(admin.locator("#stat-connections")).to_have_text("0")
