"""The dashboard's live socket through a real socket (the browser tests cover its page)."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect

from tests.abuse.support import eventually, log_events
from tests.admin.support import API_KEY, admin_env, api_client, uid
from tests.conftest import GatewayFactory
from tests.helpers.ws import TIMEOUT, connect_peer


@pytest.mark.parametrize("burst", [0, 200], ids=["idle", "busy-room"])
async def test_a_viewer_that_vanishes_while_tailing_is_no_error(
    gateway_factory: GatewayFactory, burst: int,
) -> None:
    gw = gateway_factory(env=admin_env(ROOMCAST_LOG_FORMAT="json"))
    group = uid("g")
    member = await connect_peer(gw, uid("m"), groups=[group])
    url = f"ws://127.0.0.1:{gw.port}/websocket/admin/live"
    viewer = await connect(url, additional_headers={"X-API-Key": API_KEY}, open_timeout=TIMEOUT)
    assert json.loads(await asyncio.wait_for(viewer.recv(), TIMEOUT))["type"] == "snapshot"
    await viewer.send(json.dumps({"action": "tail", "room": f"group:{group}"}))
    while json.loads(await asyncio.wait_for(viewer.recv(), TIMEOUT))["type"] != "tailing":
        pass
    viewer.transport.abort()
    async with api_client(gw) as api:
        for i in range(burst):
            r = await api.post(f"/websocket/rooms/group:{group}/message",
                               json={"type": "notification", "data": {"i": i}})
            assert r.status_code == 200, r.text

    async def left() -> list[dict[str, object]] | None:
        return log_events(gw, "live_viewer_left") or None

    await eventually(left, "the viewer's end to be logged")
    assert '"level": "error"' not in gw.log(), gw.log()[-3000:]
    await member.close()
