"""One gateway per test module, with an API key and a listed administrator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.admin.support import admin_env, api_client
from tests.helpers.gateway import GatewayProcess


@pytest.fixture(scope="module")
def admin_gw() -> Iterator[GatewayProcess]:
    gw = GatewayProcess(env=admin_env()).start()
    yield gw
    gw.close()


@pytest.fixture
async def api(admin_gw: GatewayProcess) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client authenticated with the API key."""
    async with api_client(admin_gw) as client:
        yield client
