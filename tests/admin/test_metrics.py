"""``/metrics``: Prometheus text whose values follow real traffic."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.admin.support import admin_env, api_client
from tests.helpers.gateway import GatewayProcess
from tests.helpers.tokens import make_token
from tests.helpers.ws import connect_peer

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(http: httpx.AsyncClient) -> Samples:
    r = await http.get("/metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def gw(gateway_factory: Any) -> GatewayProcess:
    """A gateway of this test alone, so that every delta is this test's traffic."""
    gw: GatewayProcess = gateway_factory(env=admin_env())
    return gw


async def test_metrics_follow_traffic(gw: GatewayProcess) -> None:
    async with api_client(gw) as http:
        before = await scrape(http)
        assert value(before, "roomcast_connections_active") == 0

        a = await connect_peer(gw, "alice", groups=["red"])
        b = await connect_peer(gw, "bob", groups=["red"])
        reply = await a.request({"id": "m1", "type": "message", "room": "group:red",
                                 "data": {"text": "hi"}})
        assert reply["data"]["status"] == "ok"
        error = await a.request({"id": "m2", "type": "message", "room": "group:blue",
                                 "data": {}})
        assert error["type"] == "error" and error["data"]["code"] == "forbidden"
        await a.send("{not json")
        assert (await a.expect("error"))["data"]["code"] == "invalid_json"
        with pytest.raises(InvalidStatus):
            await connect(gw.ws_url, additional_headers={
                "Authorization": f"Bearer {make_token('x' * 40, 'mallory')}"})
        r = await http.post("/websocket/broadcast", json={"type": "notification", "data": {}})
        assert r.status_code == 200
        assert (await http.get("/websocket/rooms", headers={"X-API-Key": "bad"})).status_code \
            == 401

        after = await scrape(http)

        def delta(name: str, **labels: str) -> float:
            return value(after, name, **labels) - value(before, name, **labels)

        assert value(after, "roomcast_connections_active") == 2
        assert delta("roomcast_connections_total") == 2
        assert value(after, "roomcast_rooms", type="personal") == 2
        assert value(after, "roomcast_rooms", type="group") == 1
        assert delta("roomcast_handshake_seconds_count") == 2
        # m1 and m2; the invalid frame is rejected before it has a type.
        assert delta("roomcast_messages_received_total", type="message") == 2
        assert delta("roomcast_messages_published_total", type="message") == 1
        assert delta("roomcast_messages_published_total", type="notification") == 1
        # Publications queued for local connections: the room message to alice and bob, the
        # broadcast to both, and bob's member_joined to alice. (The welcome and room_joined
        # frames go to their one connection directly, not through the broker.)
        assert delta("roomcast_deliveries_total") == 5
        assert delta("roomcast_messages_rejected_total", code="forbidden") == 1
        assert delta("roomcast_messages_rejected_total", code="invalid_json") == 1
        assert delta("roomcast_auth_failures_total", reason="bad_signature") == 1
        assert delta("roomcast_auth_failures_total", reason="bad_api_key") == 1
        assert delta("roomcast_api_requests_total", operation="broadcast", status="200") == 1
        assert delta("roomcast_api_requests_total", operation="listRooms", status="401") == 1
        assert value(after, "roomcast_slow_consumers_dropped_total") == 0
        assert value(after, "roomcast_broker_publish_errors_total") == 0

        await b.close()
        # The server counts b out before it tells the room: a's event means the gauges moved.
        left = await a.expect("room_update")
        assert left["data"]["action"] == "member_left"
        final = await scrape(http)
        assert value(final, "roomcast_connections_active") == 1
        assert value(final, "roomcast_rooms", type="personal") == 1
        assert value(final, "roomcast_rooms", type="group") == 1
        await a.close()


async def test_metrics_are_public_and_hold_no_user_data(gw: GatewayProcess) -> None:
    peer = await connect_peer(gw, "private-user-qzx", groups=["private-group-qzx"])
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=10) as http:
        r = await http.get("/metrics")
    assert r.status_code == 200
    # Letters, not digits: a sample's value may well contain "777".
    assert "qzx" not in r.text and peer.conn_id not in r.text
    await peer.close()
