"""Shared fixtures: real gateway processes, real Redis and PostgreSQL servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.helpers.gateway import GatewayProcess

pytest_plugins = ["tests.helpers.fixtures_redis", "tests.helpers.fixtures_postgres"]

GatewayFactory = Callable[..., GatewayProcess]


@pytest.fixture
def gateway_factory() -> Iterator[GatewayFactory]:
    """Start gateways with custom env/args; all are killed at the end of the test."""
    started: list[GatewayProcess] = []

    def make(env: dict[str, str] | None = None, args: list[str] | None = None,
             *, tls: bool = False, start: bool = True) -> GatewayProcess:
        gw = GatewayProcess(env=env, args=args, tls=tls)
        started.append(gw)
        return gw.start() if start else gw

    yield make
    for gw in started:
        gw.close()


@pytest.fixture(scope="module")
def gateway() -> Iterator[GatewayProcess]:
    """One gateway with embedded defaults, shared by a test module."""
    gw = GatewayProcess().start()
    yield gw
    gw.close()


@pytest.fixture
def fresh_gateway(gateway_factory: GatewayFactory) -> GatewayProcess:
    """A gateway of this test's own (for stopping, killing, restarting)."""
    return gateway_factory()
