"""The Go gateway's answers where its typed clients decode them: prefix, errors, listings."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from roomcast.server.admin.routes import OPERATIONS
from tests.admin.support import API_KEY, admin_env, uid
from tests.conftest import GatewayFactory
from tests.helpers.gateway import GatewayProcess
from tests.helpers.problems import answer, conforms, problem
from tests.helpers.tokens import make_token
from tests.helpers.ws import connect_peer


@pytest.fixture(scope="module")
def prefixed() -> Any:
    gw = GatewayProcess(env=admin_env(API_PREFIX="/api")).start()
    yield gw
    gw.close()


async def test_api_prefix_mounts_the_http_api(prefixed: GatewayProcess) -> None:
    user = uid("pre")
    peer = await connect_peer(prefixed, user)  # the WebSocket path is not prefixed, as in Go
    async with httpx.AsyncClient(base_url=prefixed.base_url, timeout=10,
                                 headers={"X-API-Key": API_KEY}) as http:
        answer(await http.get("/api/websocket/status"), "Status")
        listing = answer(await http.get("/api/websocket/connections",
                                        params={"user_id": user}), "ConnectionList")
        assert [c["id"] for c in listing["connections"]] == [peer.conn_id]
        sent = answer(await http.post(f"/api/websocket/users/{user}/message",
                                      json={"type": "notification", "data": {"n": 1}}), "Sent")
        assert (await peer.recv())["id"] == sent["message_id"]
        # Nothing of the API answers without the prefix; probes and metrics stay at the root.
        assert (await http.get("/websocket/status")).status_code == 404
        problem_body = problem(await http.get("/api/websocket/nowhere"), 404)
        assert problem_body["$schema"].endswith("/api/schemas/ErrorModel.json")
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).json() == {"status": "ready"}
        assert (await http.get("/metrics")).status_code == 200
        spec = (await http.get("/api/websocket/openapi.json")).json()
        assert set(spec["paths"]) >= {"/api" + op.path for op in OPERATIONS}
        docs = await http.get("/api/websocket/docs")
        assert 'data-spec="/api/websocket/openapi.json"' in docs.text
        assert 'src="/api/websocket/docs.js"' in docs.text
        assert (await http.get("/api/websocket/docs.js")).status_code == 200
    await peer.close()


async def test_schema_links_resolve(prefixed: GatewayProcess) -> None:
    """huma's ``$schema`` and ``Link`` name a JSON Schema the API serves."""
    async with httpx.AsyncClient(base_url=prefixed.base_url, timeout=10) as http:
        status = await http.get("/api/websocket/status")
        link = status.headers["Link"]
        assert link == '</api/schemas/Status.json>; rel="describedBy"'
        schema = await http.get(status.json()["$schema"])
        assert schema.status_code == 200
        assert schema.headers["Content-Type"].startswith("application/schema+json")
        assert schema.json()["properties"]["stats"] == {"$ref": "./Stats.json"}
        assert (await http.get("/api/schemas/Stats.json")).json()["type"] == "object"
        problem(await http.get("/api/schemas/Nope.json"), 404)


async def test_unknown_paths_and_methods_answer_problem_json(admin_gw: GatewayProcess) -> None:
    async with httpx.AsyncClient(base_url=admin_gw.base_url, timeout=10,
                                 headers={"X-API-Key": API_KEY}) as http:
        problem(await http.get("/websocket/nowhere"), 404)
        gone = problem(await http.delete("/websocket/broadcast"), 405)
        assert gone["code"] == "method_not_allowed"
        # The pages outside the API keep aiohttp's plain answers.
        assert (await http.get("/no-such-page")).headers["Content-Type"].startswith("text/plain")


async def test_handshake_refusals_are_problem_json(admin_gw: GatewayProcess) -> None:
    async with httpx.AsyncClient(base_url=admin_gw.base_url, timeout=10) as http:
        body = problem(await http.get("/websocket/connect"), 401, "unauthorized")
        assert body["reason"] == "missing_token"
        token = make_token(admin_gw.secret, uid("plain"))
        r = await http.get("/websocket/connect", headers={"Authorization": f"Bearer {token}"})
        problem(r, 426, "upgrade_required")
        r = await http.get("/websocket/connect", headers={"Origin": "https://evil.example"})
        assert problem(r, 403, "forbidden")["reason"] == "origin"


async def test_unknown_room_type_lists_nothing_as_in_go(admin_gw: GatewayProcess) -> None:
    peer = await connect_peer(admin_gw, uid("typed"), groups=[uid("g")])
    async with httpx.AsyncClient(base_url=admin_gw.base_url, timeout=10,
                                 headers={"X-API-Key": API_KEY}) as http:
        for kind in ("secret", "PERSONAL", "group,personal", ""):
            body = answer(await http.get("/websocket/rooms", params={"type": kind}), "RoomList")
            expected = 0 if kind else body["total"]
            assert body["total"] == expected == len(body["rooms"]), (kind, body)
        groups = answer(await http.get("/websocket/rooms", params={"type": "group"}), "RoomList")
        assert groups["total"] >= 1 and {r["type"] for r in groups["rooms"]} == {"group"}
    await peer.close()


async def test_recipients_count_is_left_out_when_zero(gateway_factory: GatewayFactory) -> None:
    """Go's ``omitempty``: a broadcast that reached nobody has no recipients_count."""
    gw = gateway_factory(env=admin_env())
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=10,
                                 headers={"X-API-Key": API_KEY}) as http:
        r = await http.post("/websocket/broadcast", json={"type": "notification", "data": {}})
        body = answer(r, "Sent")
        assert "recipients_count" not in body
        assert body["message"] == "Message broadcast successfully"
        assert not {"connection_id", "user_id", "room_id"} & set(body)
        conforms({k: v for k, v in body.items() if k != "envelope"}, "Sent")
