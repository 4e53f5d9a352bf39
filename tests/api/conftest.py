"""One gateway per test module, with an API key and a listed administrator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.admin.support import admin_env
from tests.helpers.gateway import GatewayProcess


@pytest.fixture(scope="module")
def admin_gw() -> Iterator[GatewayProcess]:
    gw = GatewayProcess(env=admin_env()).start()
    yield gw
    gw.close()


@pytest.fixture
def dead_url() -> str:
    """A URL where nothing listens (a port the kernel just handed out and took back)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
