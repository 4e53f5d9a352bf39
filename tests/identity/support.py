"""Helpers of the token tests: probe a handshake's verdict, start gateways with key setups."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers.gateway import GatewayProcess
from tests.helpers.ws import TIMEOUT


async def verdict(gw: GatewayProcess, token: str) -> tuple[int, str | None]:
    """What the handshake says of ``token``: (426, None) when it is accepted, else the
    refusal's status and reason. A plain GET is checked like an upgrade, then refused
    for not being one, so no connection is left open."""
    async with httpx.AsyncClient(verify=False, timeout=TIMEOUT) as http:
        resp = await http.get(gw.ws_url.replace("ws", "http", 1),
                              headers={"Authorization": f"Bearer {token}"})
    body: dict[str, Any] = resp.json()
    return resp.status_code, body.get("reason")


ACCEPTED = (426, None)
