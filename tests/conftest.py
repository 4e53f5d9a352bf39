"""Shared fixtures: real gateway processes, real Redis and PostgreSQL servers."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests.helpers.gateway import GatewayProcess

pytest_plugins = ["tests.helpers.fixtures_redis", "tests.helpers.fixtures_postgres"]

GatewayFactory = Callable[..., GatewayProcess]

# A busy machine must not fail a property: no deadline and no speed health check anywhere;
# under CI the examples are also fixed (derandomized, no example database) so a run there is
# repeatable. HYPOTHESIS_PROFILE picks one by name.
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "ci", parent=settings.get_profile("dev"), derandomize=True, database=None, print_blob=True
)
_PROFILE = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
settings.load_profile(_PROFILE)


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
