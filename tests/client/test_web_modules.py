"""The browser modules are served where client.js's relative imports look for them."""

from __future__ import annotations

import re
from urllib.parse import urljoin

import httpx
import pytest

from roomcast.server.pages import WEB_DIR
from tests.helpers.gateway import GatewayProcess

IMPORT = re.compile(r"""^\s*(?:import|export)\s[^;]*?\sfrom\s+["'](\.[^"']+)["']""", re.M)


@pytest.mark.parametrize("prefix", ["/websocket/", "/static/"])
async def test_client_module_and_its_imports_are_served(gateway: GatewayProcess,
                                                        prefix: str) -> None:
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        pending, seen = [urljoin(prefix, "client.js")], set()
        while pending:
            path = pending.pop()
            seen.add(path)
            r = await http.get(path)
            assert r.status_code == 200, path
            assert "javascript" in r.headers["content-type"], (path, r.headers["content-type"])
            assert r.text == (WEB_DIR / path.rsplit("/", 1)[1]).read_text(), path
            pending += [urljoin(path, rel) for rel in IMPORT.findall(r.text)
                        if urljoin(path, rel) not in seen]
        assert urljoin(prefix, "positions.js") in seen
