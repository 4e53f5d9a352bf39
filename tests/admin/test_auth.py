"""Who may call each admin endpoint: the authorization matrix, cookies and CSRF."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest

from roomcast.auth import COOKIE_NAME
from roomcast.server.admin import bodies
from roomcast.server.admin.routes import OPERATIONS, Operation
from tests.admin.support import ADMIN_SCOPE, ADMIN_USER, API_KEY
from tests.helpers.gateway import GatewayProcess
from tests.helpers.problems import answer, problem
from tests.helpers.tokens import make_token, raw_token
from tests.helpers.ws import connect_peer

_PATH_VALUES = {
    "user_id": "matrix-user",
    "group_id": "matrix-group",
    "room_id": "group:matrix-group",
    "connection_id": "00000000-0000-4000-8000-000000000000",
}
_BODIES: dict[type[Any], dict[str, Any]] = {
    bodies.MessageBody: {"type": "notification", "data": {"n": 1}},
    bodies.ProfileBody: {"character_id": 7, "profile": {"n": 1}},
    bodies.MembershipBody: {"name": "Matrix"},
    bodies.DisconnectBody: {"ban_seconds": 1},
}
#: What an authorized call answers: the fake connection, user and room have no connection
#: (messages to the user and the room are kept in their history for later: 202).
_AUTHORIZED = {"getConnection": 404, "messageConnection": 404, "disconnectConnection": 404,
               "getRoom": 404, "messageUser": 202, "messageRoom": 202}


def _request(op: Operation) -> dict[str, Any]:
    url = re.sub(r"{(\w+)}", lambda m: _PATH_VALUES[m.group(1)], op.path)
    out: dict[str, Any] = {"method": op.method, "url": url}
    if op.body is not None:
        out["json"] = _BODIES[op.body]
    return out


def _credentials(gw: GatewayProcess, kind: str) -> tuple[dict[str, str], dict[str, str]]:
    """(headers, cookies) of one row of the matrix."""
    user = make_token(gw.secret, "plain-user")
    admin = make_token(gw.secret, "scoped-admin", scopes=f"read {ADMIN_SCOPE}")
    listed = make_token(gw.secret, ADMIN_USER)
    expired = raw_token(gw.secret, {"user_id": "x", "scopes": ADMIN_SCOPE,
                                    "exp": int(time.time()) - 60})
    forged = make_token("another-secret-that-is-long-enough-0123456789", "x", scopes=ADMIN_SCOPE)
    return {
        "none": ({}, {}),
        "user_bearer": ({"Authorization": f"Bearer {user}"}, {}),
        "user_cookie": ({}, {COOKIE_NAME: user}),
        "admin_scope_bearer": ({"Authorization": f"Bearer {admin}"}, {}),
        "admin_scope_cookie": ({}, {COOKIE_NAME: admin}),
        "admin_listed_bearer": ({"Authorization": f"Bearer {listed}"}, {}),
        "api_key": ({"X-API-Key": API_KEY}, {}),
        "wrong_api_key": ({"X-API-Key": API_KEY + "x"}, {}),
        # A wrong key decides alone, even next to an admin's token.
        "wrong_api_key_with_admin_token": ({"X-API-Key": "nope",
                                            "Authorization": f"Bearer {admin}"}, {}),
        "expired_admin_token": ({"Authorization": f"Bearer {expired}"}, {}),
        "forged_admin_token": ({"Authorization": f"Bearer {forged}"}, {}),
        "malformed_authorization": ({"Authorization": "Basic dXNlcjpwYXNz"}, {}),
    }[kind]


_EXPECTED = {
    "none": 401, "user_bearer": 403, "user_cookie": 403, "admin_scope_bearer": None,
    "admin_scope_cookie": None, "admin_listed_bearer": None, "api_key": None,
    "wrong_api_key": 401, "wrong_api_key_with_admin_token": 401, "expired_admin_token": 401,
    "forged_admin_token": 401, "malformed_authorization": 401,
}


@pytest.mark.parametrize("kind", list(_EXPECTED))
@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.operation_id)
def test_authorization_matrix(admin_gw: GatewayProcess, op: Operation, kind: str) -> None:
    headers, cookies = _credentials(admin_gw, kind)
    with httpx.Client(base_url=admin_gw.base_url, cookies=cookies, timeout=10) as http:
        r = http.request(**_request(op), headers=headers)
    expected = _EXPECTED[kind] or _AUTHORIZED.get(op.operation_id, 200)
    assert r.status_code == expected, r.text
    if expected in (401, 403):
        body = problem(r, expected, "unauthorized" if expected == 401 else "forbidden")
        assert body["reason"]
    if expected == 401:
        assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_refusals_say_why(admin_gw: GatewayProcess) -> None:
    with httpx.Client(base_url=admin_gw.base_url, timeout=10) as http:
        assert problem(http.get("/websocket/rooms"), 401)["reason"] == "missing_token"
        wrong = problem(http.get("/websocket/rooms", headers={"X-API-Key": "wrong"}), 401)
        assert (wrong["code"], wrong["detail"], wrong["reason"]) == (
            "unauthorized", "wrong API key", "bad_api_key")
        user = make_token(admin_gw.secret, "plain-user")
        r = http.get("/websocket/rooms", headers={"Authorization": f"Bearer {user}"})
        body = problem(r, 403)
        assert (body["code"], body["detail"], body["reason"]) == (
            "forbidden", "administrators only", "not_admin")


def test_api_key_refused_when_none_is_configured(gateway_factory: Any) -> None:
    gw = gateway_factory()  # no ROOMCAST_API_KEY
    with httpx.Client(base_url=gw.base_url, timeout=10) as http:
        r = http.get("/websocket/rooms", headers={"X-API-Key": ""})
        assert r.status_code == 401
        admin = make_token(gw.secret, "a", scopes=ADMIN_SCOPE)
        assert http.get("/websocket/rooms",
                        headers={"Authorization": f"Bearer {admin}"}).status_code == 200


def test_admin_scope_is_configurable(gateway_factory: Any) -> None:
    gw = gateway_factory(env={"ROOMCAST_ADMIN_SCOPE": "ops"})
    with httpx.Client(base_url=gw.base_url, timeout=10) as http:
        for scopes, expected in (("ops", 200), (ADMIN_SCOPE, 403)):
            token = make_token(gw.secret, "a", scopes=scopes)
            r = http.get("/websocket/rooms", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == expected


class TestCookieRequestsAreSameSiteOnly:
    """The login cookie rides along on any site's request: writes must prove same-site."""

    def _client(self, gw: GatewayProcess) -> httpx.Client:
        admin = make_token(gw.secret, "cookie-admin", scopes=ADMIN_SCOPE)
        return httpx.Client(base_url=gw.base_url, cookies={COOKIE_NAME: admin}, timeout=10)

    def test_foreign_origin_refused(self, admin_gw: GatewayProcess) -> None:
        with self._client(admin_gw) as http:
            r = http.post("/websocket/broadcast", json={"type": "notification", "data": {}},
                          headers={"Origin": "https://evil.example"})
            assert problem(r, 403)["reason"] == "cross_site"
            r = http.post(f"/websocket/connections/{_PATH_VALUES['connection_id']}/disconnect",
                          headers={"Origin": "https://evil.example"})
            assert r.status_code == 403

    def test_own_origin_accepted(self, admin_gw: GatewayProcess) -> None:
        with self._client(admin_gw) as http:
            r = http.post("/websocket/broadcast", json={"type": "notification", "data": {}},
                          headers={"Origin": admin_gw.base_url})
            assert r.status_code == 200, r.text

    def test_reads_need_no_origin_check(self, admin_gw: GatewayProcess) -> None:
        with self._client(admin_gw) as http:
            r = http.get("/websocket/rooms", headers={"Origin": "https://evil.example"})
            assert r.status_code == 200

    def test_form_content_type_refused(self, admin_gw: GatewayProcess) -> None:
        # What a cross-site <form> can send without a CORS preflight.
        with self._client(admin_gw) as http:
            r = http.post("/websocket/broadcast", content=b'{"type": "notification"}',
                          headers={"Content-Type": "text/plain"})
            problem(r, 415, "unsupported_media_type")

    def test_api_key_callers_need_no_content_type(self, admin_gw: GatewayProcess) -> None:
        # Not forgeable by a browser; curl -d sends form-urlencoded.
        with httpx.Client(base_url=admin_gw.base_url, timeout=10) as http:
            r = http.post("/websocket/broadcast",
                          content=b'{"type": "notification", "data": {}}',
                          headers={"X-API-Key": API_KEY,
                                   "Content-Type": "application/x-www-form-urlencoded"})
            assert r.status_code == 200, r.text


async def test_status_is_public_and_reveals_no_user_data(admin_gw: GatewayProcess) -> None:
    secret_user = "very-private-user-4242"
    peer = await connect_peer(admin_gw, secret_user, groups=["secret-group-4242"],
                              name="Private Name 4242")
    try:
        async with httpx.AsyncClient(base_url=admin_gw.base_url, timeout=10) as http:
            r = await http.get("/websocket/status")
        body = answer(r, "Status")
        assert body["status"] == "healthy" and body["stats"]["active_connections"] >= 1
        assert "4242" not in r.text and peer.conn_id not in r.text
        assert set(body) <= {"$schema", *bodies.Status.model_fields}
    finally:
        await peer.close()
