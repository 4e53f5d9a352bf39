"""Message POSTs, profile events and kicks reach exactly the right connections."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import httpx
import pytest

from roomcast.protocol.envelope import SERVER_API_TYPES
from tests.admin.support import (
    admin_env,
    api_client,
    assert_next_is_marker,
    connect_same_user,
    uid,
)
from tests.helpers.gateway import GatewayProcess
from tests.helpers.problems import answer, problem
from tests.helpers.ws import Message, connect_peer


def _check_answer(r: httpx.Response, kind: str, data: dict[str, Any], count: int,
                  status_text: str, **echo: str) -> None:
    """The Go gateway's answer: ``{success, message_id, recipients_count, ...}`` + the target."""
    body = answer(r, "Sent")
    assert body["success"] is True
    assert body["recipients_count"] == count
    assert body["message"] == status_text
    for key, value in echo.items():
        assert body[key] == value
    assert not {"connection_id", "user_id", "room_id"} - set(echo) & set(body), body
    msg = body["envelope"]
    assert msg["id"] == body["message_id"] and msg["timestamp"] == body["timestamp"]
    assert msg["type"] == kind and msg["data"] == data
    assert "from" not in msg
    datetime.fromisoformat(body["timestamp"])


def _same(received: Message, answer: dict[str, Any]) -> None:
    assert received == answer["envelope"]


async def test_broadcast_reaches_every_connection(gateway_factory: Any) -> None:
    gw = gateway_factory(env=admin_env())
    a = await connect_peer(gw, uid("a"))
    b = await connect_peer(gw, uid("b"), groups=["g"])
    async with api_client(gw) as api:
        r = await api.post("/websocket/broadcast",
                           json={"type": "system_notification", "data": {"text": "hi"}})
    _check_answer(r, "system_notification", {"text": "hi"}, 2, "Message broadcast successfully")
    for peer in (a, b):
        _same(await peer.recv(), r.json())
        await peer.close()


async def test_room_message_reaches_members_only(admin_gw: GatewayProcess,
                                                 api: httpx.AsyncClient) -> None:
    group, outsider_id = uid("grp"), uid("out")
    members = [await connect_peer(admin_gw, uid("m"), groups=[group]) for _ in range(2)]
    joined = await members[0].recv()  # the second member's arrival
    assert joined["type"] == "room_update" and joined["data"]["action"] == "member_joined"
    outsider = await connect_peer(admin_gw, outsider_id)
    r = await api.post(f"/websocket/rooms/group:{group}/message",
                       json={"type": "message", "data": {"text": "to the room"}})
    _check_answer(r, "message", {"text": "to the room"}, 2, "Message sent to room successfully",
                  room_id=f"group:{group}")
    assert r.json()["envelope"]["room"] == f"group:{group}"
    for peer in members:
        _same(await peer.recv(), r.json())
    await assert_next_is_marker(api, outsider, outsider_id)
    for peer in (*members, outsider):
        await peer.close()


async def test_user_or_room_without_connection_is_404(gateway_factory: Any) -> None:
    """As the Go gateway answers, when no history keeps the message."""
    gw = gateway_factory(env=admin_env(ROOMCAST_HISTORY_USER_SIZE="0",
                                       ROOMCAST_HISTORY_GROUP_SIZE="0"))
    room, user = f"group:{uid('empty')}", uid("nobody")
    async with api_client(gw) as api:
        body = problem(await api.post(f"/websocket/rooms/{room}/message",
                                      json={"type": "notification", "data": {}}), 404,
                       "not_found")
        assert room in body["detail"]
        body = problem(await api.post(f"/websocket/users/{user}/message",
                                      json={"type": "notification", "data": {}}), 404,
                       "not_found")
        assert user in body["detail"]


async def test_user_or_room_without_connection_is_stored_with_history(
    api: httpx.AsyncClient,
) -> None:
    """With history (the default), nobody connected: accepted for later, 202 and where."""
    room, user = f"group:{uid('empty')}", uid("nobody")
    for path, stream in ((f"/websocket/rooms/{room}/message", room),
                         (f"/websocket/users/{user}/message", f"user:{user}")):
        r = await api.post(path, json={"type": "notification", "data": {"n": 1}})
        assert r.status_code == 202, r.text
        body = r.json()
        assert "stored for later delivery" in body["message"]
        assert body["stored"]["room"] == stream and body["stored"]["offset"] == 1
        assert body["envelope"]["offset"] == 1
        assert body["envelope"]["epoch"] == body["stored"]["epoch"]
        assert "recipients_count" not in body


async def test_user_message_reaches_all_their_connections(admin_gw: GatewayProcess,
                                                          api: httpx.AsyncClient) -> None:
    user, other_id = uid("u"), uid("other")
    mine = await connect_same_user(admin_gw, user)
    other = await connect_peer(admin_gw, other_id)
    r = await api.post(f"/websocket/users/{user}/message",
                       json={"type": "critical_alert", "data": {"level": 3}})
    # The Go gateway routes user messages over Redis by data.user_id, so it is always set.
    _check_answer(r, "critical_alert", {"level": 3, "user_id": user}, 2,
                  "Message sent to user successfully", user_id=user)
    for peer in mine:
        _same(await peer.recv(), r.json())
    await assert_next_is_marker(api, other, other_id)

    same = await api.post(f"/websocket/users/{user}/message",
                          json={"type": "message", "data": {"user_id": user}})
    assert same.status_code == 200
    for peer in (*mine, other):
        await peer.close()


async def test_a_connection_that_left_its_personal_room_still_gets_its_users_messages(
        admin_gw: GatewayProcess, api: httpx.AsyncClient) -> None:
    user = uid("leaver")
    leaver, stayer = await connect_same_user(admin_gw, user)
    reply = await leaver.request({"id": "out", "type": "system",
                                  "data": {"action": "leave", "room": f"user:{user}"}})
    assert reply["data"]["status"] == "ok"
    posted = await stayer.request({"id": "mine", "type": "message", "room": f"user:{user}",
                                   "data": {"text": "to my other tabs"}})
    assert posted["type"] != "error", posted
    r = await api.post(f"/websocket/users/{user}/message",
                       json={"type": "critical_alert", "data": {"level": 1}})
    assert answer(r, "Sent")["recipients_count"] == 2
    # The room post came first, to the room's members only; the user's message to both.
    got = await leaver.expect(lambda m: m.get("type") in ("message", "critical_alert"))
    _same(got, r.json())
    await stayer.expect(lambda m: m.get("type") == "critical_alert")
    for peer in (leaver, stayer):
        await peer.close()


async def test_connection_message_reaches_that_connection_only(
        admin_gw: GatewayProcess, api: httpx.AsyncClient) -> None:
    user = uid("u")
    first, second = await connect_same_user(admin_gw, user)
    r = await api.post(f"/websocket/connections/{first.conn_id}/message",
                       json={"type": "backend_status", "data": {"ok": True}})
    _check_answer(r, "backend_status", {"ok": True}, 1,
                  "Message sent to connection successfully", connection_id=first.conn_id)
    assert r.json()["envelope"]["to"] == first.conn_id
    _same(await first.recv(), r.json())
    # The user's other connection got nothing: its next message is the marker.
    await assert_next_is_marker(api, second, user)
    await first.close()
    await second.close()


async def test_message_to_unknown_connection_is_404(api: httpx.AsyncClient) -> None:
    r = await api.post("/websocket/connections/no-such-connection/message",
                       json={"type": "message", "data": {}})
    body = problem(r, 404, "not_found")
    assert body["detail"] == "no connection 'no-such-connection'"


@pytest.mark.parametrize("kind", SERVER_API_TYPES)
async def test_every_go_type_is_accepted(api: httpx.AsyncClient, kind: str) -> None:
    r = await api.post("/websocket/broadcast", json={"type": kind, "data": {"k": kind}})
    assert answer(r, "Sent")["envelope"]["type"] == kind


async def test_data_is_required_as_in_go(api: httpx.AsyncClient) -> None:
    for body, message in (({"type": "presence"}, "is required"),
                          ({"type": "presence", "data": None}, "must be a JSON object")):
        problem_body = problem(await api.post("/websocket/broadcast", json=body), 422)
        assert problem_body["errors"] == [{"location": "body.data", "message": message}]


_DEEP = '{"type": "message", "data": ' + '{"a": ' * 300 + "1" + "}" * 300 + "}"
_INVALID: list[tuple[str, bytes, str, str]] = [
    ("invalid json", b'{"type": "message", ', "invalid_json", "not valid JSON"),
    ("not an object", b'["message"]', "invalid_body", "must be a JSON object"),
    ("empty body", b"", "invalid_body", "body is required"),
    ("missing type", b'{"data": {}}', "invalid_body", "type: is required"),
    ("unknown type", b'{"type": "room_joined", "data": {}}', "invalid_body",
     "type: must be one of"),
    ("type not a string", b'{"type": 5, "data": {}}', "invalid_body", "type: must be a string"),
    ("data a list", b'{"type": "message", "data": [1]}', "invalid_body",
     "data: must be a JSON object"),
    ("data a string", b'{"type": "message", "data": "hi"}', "invalid_body",
     "data: must be a JSON object"),
    ("NaN", b'{"type": "message", "data": {"x": NaN}}', "invalid_json", "not valid JSON"),
    ("too deep", _DEEP.encode(), "invalid_body", "data:"),
    ("too large", json.dumps({"type": "message", "data": {"x": "a" * 70_000}}).encode(),
     "too_large", "exceeds"),
]


@pytest.mark.parametrize("target", ["/websocket/broadcast", "/websocket/users/someone/message",
                                    "/websocket/rooms/group:g/message",
                                    "/websocket/connections/any-id/message"])
@pytest.mark.parametrize(("case", "raw", "error", "text"), _INVALID, ids=[c[0] for c in _INVALID])
async def test_invalid_bodies_are_422(api: httpx.AsyncClient, target: str, case: str,
                                      raw: bytes, error: str, text: str) -> None:
    r = await api.post(target, content=raw, headers={"Content-Type": "application/json"})
    assert text in problem(r, 422, error)["detail"]


async def test_user_message_with_another_users_id_is_refused(api: httpx.AsyncClient) -> None:
    r = await api.post("/websocket/users/alice/message",
                       json={"type": "message", "data": {"user_id": "bob"}})
    assert problem(r, 422)["errors"] == [{"location": "body.data.user_id",
                                          "message": "must equal 'alice'"}]


async def test_profile_update_reaches_the_users_connections(
        admin_gw: GatewayProcess, api: httpx.AsyncClient) -> None:
    user, other_id = uid("prof"), uid("other")
    mine = await connect_same_user(admin_gw, user)
    other = await connect_peer(admin_gw, other_id)
    profile = {"name": "Ada", "corp": {"id": 1, "ticker": "ANLY"}}
    r = await api.post(f"/websocket/users/{user}/profile",
                       json={"character_id": 90000001, "profile": profile})
    assert answer(r, "Sent")["recipients_count"] == 2
    assert r.json()["user_id"] == user
    for peer in mine:
        msg = await peer.recv()
        assert msg["type"] == "user_profile_update"
        assert msg["data"] == {"user_id": user, "character_id": 90000001, "profile": profile,
                               "timestamp": msg["data"]["timestamp"]}
        assert msg == r.json()["envelope"]
    await assert_next_is_marker(api, other, other_id)
    for peer in (*mine, other):
        await peer.close()


@pytest.mark.parametrize(("body", "field"), [
    ({}, "body.profile"),
    ({"profile": []}, "body.profile"),
    ({"profile": {}, "character_id": "7"}, "body.character_id"),
    ({"profile": {}, "character_id": True}, "body.character_id"),
    ({"profile": {}, "character_id": -5}, "body.character_id"),
])
async def test_invalid_profile_is_422(api: httpx.AsyncClient, body: dict[str, Any],
                                      field: str) -> None:
    r = await api.post("/websocket/users/someone/profile", json=body)
    assert problem(r, 422)["errors"][0]["location"] == field


async def test_disconnect_kicks_with_3500(admin_gw: GatewayProcess,
                                          api: httpx.AsyncClient) -> None:
    user = uid("kick")
    victim, bystander = await connect_same_user(admin_gw, user)
    r = await api.post(f"/websocket/connections/{victim.conn_id}/disconnect")
    body = answer(r, "Disconnected")
    assert body["success"] is True and body["connection_id"] == victim.conn_id
    await victim.ws.wait_closed()
    assert victim.ws.close_code == 3500
    assert victim.ws.close_reason == "disconnected by administrator"
    # Only that connection: the user's other one sees it leave, then still receives.
    left = await bystander.recv()
    assert left["type"] == "room_update"
    assert left["data"] == {"action": "member_left", "room_id": f"user:{user}",
                            "member_count": 1, "connection_id": victim.conn_id,
                            "user_id": user}
    await assert_next_is_marker(api, bystander, user)
    await bystander.close()
    r = await api.post("/websocket/connections/no-such-connection/disconnect")
    problem(r, 404, "not_found")


async def test_disconnect_with_reconnect_closes_with_1001(admin_gw: GatewayProcess,
                                                         api: httpx.AsyncClient) -> None:
    victim = await connect_peer(admin_gw, uid("move"))
    r = await api.post(f"/websocket/connections/{victim.conn_id}/disconnect",
                       params={"reconnect": "true"})
    assert answer(r, "Disconnected")["connection_id"] == victim.conn_id
    await victim.ws.wait_closed()
    assert victim.ws.close_code == 1001  # going away: clients reconnect
    assert victim.ws.close_reason == "asked to reconnect by administrator"
    r = await api.post(f"/websocket/connections/{victim.conn_id}/disconnect",
                       params={"reconnect": "maybe"})
    assert problem(r, 422, "invalid_query")["errors"][0]["location"] == "query.reconnect"
