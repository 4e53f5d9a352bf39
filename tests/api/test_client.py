"""``roomcast.api``: the sync and async clients against a real gateway."""

from __future__ import annotations

import asyncio

import pytest

from roomcast.api import AsyncRoomcastAPI, RoomcastAPI
from roomcast.exceptions import (
    ApiAuthError,
    ApiError,
    ApiInvalid,
    ApiNotFound,
    ApiUnavailable,
    AuthError,
    NotFound,
)
from tests.admin.support import ADMIN_SCOPE, API_KEY, uid
from tests.helpers.gateway import GatewayProcess
from tests.helpers.tokens import make_token
from tests.helpers.ws import connect_peer


async def test_sync_client_end_to_end(admin_gw: GatewayProcess) -> None:
    user, group = uid("sync"), uid("grp")
    peer = await connect_peer(admin_gw, user)
    api = RoomcastAPI(admin_gw.base_url, api_key=API_KEY)
    call = asyncio.to_thread  # the sync client blocks: keep the peer's loop running

    sent = await call(api.send_to_user, user, "notification", {"text": "hello"})
    assert sent.success and sent.recipients_count == 1
    msg = await peer.recv()
    assert msg["id"] == sent.message_id
    assert msg["data"] == {"text": "hello", "user_id": user}

    membership = await call(api.add_to_group, user, group, "Blue")
    assert (membership.changed, membership.group_name, membership.joined) == (True, "Blue", True)
    assert (await peer.recv())["type"] == "room_joined"
    assert (await peer.recv())["type"] == "group_membership_change"
    assert not (await call(api.add_to_group, user, group, "Blue")).changed
    assert [(g.id, g.name) for g in await call(api.groups, user)] == [(group, "Blue")]

    sent = await call(api.send_to_room, f"group:{group}", "message", {"n": 1})
    assert sent.recipients_count == 1 and sent.room_id == f"group:{group}"
    assert sent.message == "Message sent to room successfully"
    assert sent.envelope is not None and sent.envelope.room == f"group:{group}"
    assert (await peer.recv())["id"] == sent.message_id
    sent = await call(api.send_to_connection, peer.conn_id, "backend_status", None)
    assert sent.envelope is not None
    assert sent.envelope.to == peer.conn_id and sent.envelope.data == {}
    assert (await peer.recv())["id"] == sent.message_id
    sent = await call(api.update_profile, user, {"name": "Ada"}, 42)
    msg = await peer.recv()
    assert msg["type"] == "user_profile_update" and msg["data"]["character_id"] == 42
    sent = await call(api.broadcast, "service_recovery")
    assert sent.recipients_count >= 1
    assert (await peer.recv())["id"] == sent.message_id

    conns = await call(lambda: api.connections(user_id=user))
    assert [c.id for c in conns] == [peer.conn_id]
    assert conns[0].rooms == sorted([f"user:{user}", f"group:{group}"])
    assert (await call(api.connection, peer.conn_id)).user_id == user
    rooms = await call(lambda: api.rooms(type="group", member_id=user))
    assert [(r.id, r.name, r.member_count) for r in rooms] == [(f"group:{group}", "Group: Blue", 1)]
    assert (await call(api.room, f"user:{user}")).type == "personal"
    assert (await call(api.status)).status == "healthy"

    assert (await call(api.remove_from_group, user, group)).changed
    assert (await peer.recv())["type"] == "room_left"
    assert (await call(api.disconnect, peer.conn_id)).success
    await peer.ws.wait_closed()
    assert peer.ws.close_code == 3500
    api.close()


async def test_async_client_end_to_end(admin_gw: GatewayProcess) -> None:
    user, group = uid("async"), uid("grp")
    peer = await connect_peer(admin_gw, user)
    async with AsyncRoomcastAPI(admin_gw.base_url, api_key=API_KEY) as api:
        sent = await api.send_to_user(user, "message", {"text": "hi"})
        assert sent.recipients_count == 1
        assert (await peer.recv())["id"] == sent.message_id
        assert (await api.add_to_group(user, group)).group_name == group
        assert (await peer.recv())["data"]["name"] == f"Group: {group}"
        assert (await peer.recv())["type"] == "group_membership_change"
        assert [g.id for g in await api.groups(user)] == [group]
        sent = await api.send_to_room(f"group:{group}", "critical_alert", {"level": 1})
        assert (await peer.recv())["id"] == sent.message_id
        sent = await api.send_to_connection(peer.conn_id, "presence")
        assert (await peer.recv())["id"] == sent.message_id
        await api.update_profile(user, {"x": 1})
        assert (await peer.recv())["data"]["profile"] == {"x": 1}
        sent = await api.broadcast("notification", {"all": True})
        assert (await peer.recv())["id"] == sent.message_id
        assert [c.id for c in await api.connections(user_id=user)] == [peer.conn_id]
        assert (await api.connection(peer.conn_id)).id == peer.conn_id
        assert [r.id for r in await api.rooms(member_id=peer.conn_id, type="personal")] == [
            f"user:{user}"]
        assert (await api.room(f"group:{group}")).member_count == 1
        assert (await api.remove_from_group(user, group)).changed
        assert (await api.status()).server_id
        assert (await api.disconnect(peer.conn_id)).connection_id == peer.conn_id
    await peer.ws.wait_closed()


async def test_sticky_kick_and_revocation_from_python(admin_gw: GatewayProcess) -> None:
    user = uid("revoked")
    token = make_token(admin_gw.secret, user)
    peer = await connect_peer(admin_gw, user, token=token)
    async with AsyncRoomcastAPI(admin_gw.base_url, api_key=API_KEY) as api:
        kicked = await api.disconnect(peer.conn_id, ban_seconds=60)
        assert (kicked.ban, kicked.user_id) == ("token", user) and kicked.banned_until
        await peer.ws.wait_closed()
        assert peer.ws.close_code == 3500
        peer = await connect_peer(admin_gw, user, ttl=7200)  # another token gets in
        revoked = await api.revoke_user(user)
        assert (revoked.user_id, revoked.success) == (user, True) and revoked.revoked_at
    await peer.ws.wait_closed()
    assert peer.ws.close_code == 3403


def test_admin_token_instead_of_api_key(admin_gw: GatewayProcess) -> None:
    user, group = uid("tok"), uid("grp")
    token = make_token(admin_gw.secret, "an-admin", scopes=ADMIN_SCOPE)
    with RoomcastAPI(admin_gw.base_url, token=token) as api:
        assert api.add_to_group(user, group).changed
        assert [g.id for g in api.groups(user)] == [group]
    # The token is what lets it in: a user's token without the scope is refused.
    user_token = make_token(admin_gw.secret, "not-an-admin")
    with RoomcastAPI(admin_gw.base_url, token=user_token) as api:
        with pytest.raises(ApiAuthError) as refused:
            api.groups(user)
        assert (refused.value.status, refused.value.reason) == (403, "not_admin")


def test_server_errors_are_clear_exceptions(admin_gw: GatewayProcess) -> None:
    with RoomcastAPI(admin_gw.base_url, api_key=API_KEY) as api:
        with pytest.raises(ApiNotFound) as not_found:
            api.connection("no-such-connection")
        assert isinstance(not_found.value, NotFound)
        assert str(not_found.value) == "HTTP 404: no connection 'no-such-connection'"
        assert (not_found.value.status, not_found.value.error) == (404, "not_found")

        with pytest.raises(ApiInvalid) as invalid:
            api.send_to_user("alice", "room_joined", {})
        assert str(invalid.value).startswith("HTTP 422: body.type: must be one of message,")
        # huma's location, and the older name for it.
        assert invalid.value.details[0]["location"] == "body.type"
        assert invalid.value.details[0]["field"] == "body.type"
        assert not invalid.value.temporary

        with pytest.raises(ApiInvalid, match="not a valid room id"):
            api.send_to_room("lobby", "message")

    with RoomcastAPI(admin_gw.base_url, api_key="wrong") as api:
        with pytest.raises(ApiAuthError) as wrong:
            api.rooms()
        assert isinstance(wrong.value, AuthError)
        assert (wrong.value.status, wrong.value.reason) == (401, "bad_api_key")
        assert str(wrong.value) == "HTTP 401: wrong API key"

    user_token = make_token(admin_gw.secret, "not-an-admin")
    with RoomcastAPI(admin_gw.base_url, token=user_token) as api, \
            pytest.raises(ApiAuthError, match="administrators only") as forbidden:
        api.broadcast("message")
    assert forbidden.value.status == 403


def test_unreachable_gateway(dead_url: str) -> None:
    with RoomcastAPI(dead_url, api_key=API_KEY, timeout=5) as api, \
            pytest.raises(ApiUnavailable) as exc:
        api.broadcast("message")
    assert exc.value.status is None and exc.value.temporary
    assert "cannot reach roomcast" in str(exc.value)
    assert isinstance(exc.value, ApiError)


async def test_async_errors(admin_gw: GatewayProcess, dead_url: str) -> None:
    async with AsyncRoomcastAPI(admin_gw.base_url, api_key=API_KEY) as api:
        with pytest.raises(ApiNotFound):
            await api.room("group:nobody-is-here")
        with pytest.raises(ApiInvalid, match="user_id"):
            await api.send_to_user("alice", "message", {"user_id": "bob"})
    async with AsyncRoomcastAPI(dead_url, api_key=API_KEY, timeout=5) as api:
        with pytest.raises(ApiUnavailable):
            await api.status()
