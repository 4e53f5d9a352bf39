"""The Python SDK's token provider keeps a connection alive across its token's expiry."""

from __future__ import annotations

import httpx
import pytest

from roomcast.client import ConnectionState, ServerClosed, ServerError
from tests.client.support import client_for
from tests.conftest import GatewayFactory
from tests.core.support import unique
from tests.helpers.tokens import make_token
from tests.helpers.ws import connect_peer
from tests.identity.test_lifetime import LIFETIME_ENV, closed_code


async def test_the_token_provider_refreshes_in_band_before_expiry(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory(LIFETIME_ENV)
    user = unique("sdk")
    short = make_token(gw.secret, user, ttl=3)
    issued: list[str] = []

    def provider() -> str:
        # The first token lives 3 s; every later one (the refresh) 10 minutes, with a group.
        token = short if not issued else make_token(gw.secret, user, ttl=600, groups=["ops"])
        issued.append(token)
        return token

    twin = await connect_peer(gw, user, token=short)  # the clock: closed at the old exp
    async with client_for(gw, user, token_provider=provider) as client:
        first_id = client.connection_id
        await client.room("group:ops").wait_joined()  # the refreshed token's group
        assert await closed_code(twin) == 3401
        await client.ping()
        assert client.connection_id == first_id and client.state is ConnectionState.CONNECTED
        assert len(issued) == 2
        # A refresh the gateway refuses says why and leaves the connection as it was.
        with pytest.raises(ServerError) as refused:
            await client.refresh_token(make_token(gw.secret, unique("other")))
        assert refused.value.code == "unauthorized" and refused.value.reason == "other_user"
        await client.ping()


async def test_a_revoked_client_stops_instead_of_reconnecting(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory({"ROOMCAST_API_KEY": "identity-api-key-0123456789abcdef"})
    user = unique("gone")
    client = client_for(gw, user)
    await client.connect()
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=30) as http:
        r = await http.post(f"/websocket/users/{user}/revoke",
                            headers={"X-API-Key": "identity-api-key-0123456789abcdef"})
        assert r.status_code == 200, r.text
    with pytest.raises(ServerClosed) as closed:
        await client.wait_closed()
    assert closed.value.code == 3403
    await client.close()
