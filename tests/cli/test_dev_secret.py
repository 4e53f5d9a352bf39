"""``groups``, ``publish`` and ``token`` against a development gateway, from any directory.

They sign with the secret `roomcast serve` generated where it runs; elsewhere they say
what to do, never create a secret of their own, and name the gateway's reason on a 401.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from roomcast.client import Client
from roomcast.config import dev_secret
from tests.cli.support import cli_env, roomcast
from tests.helpers.gateway import GatewayProcess
from tests.helpers.tokens import make_token


@pytest.fixture
def dev_gateway(tmp_path: Path) -> Iterator[tuple[GatewayProcess, Path]]:
    """A gateway without JWT_SECRET: its dev secret is in ``project/.roomcast-dev-secret``."""
    project = tmp_path / "project"
    project.mkdir()
    gw = GatewayProcess(env={
        "JWT_SECRET": "", "ROOMCAST_DEV_SECRET_FILE": str(project / ".roomcast-dev-secret"),
    })
    try:
        yield gw.start(), project
    finally:
        gw.close()


def in_dir(directory: Path, *args: str) -> tuple[int, str, str]:
    done = roomcast(*args, env=cli_env(), cwd=directory)
    return done.returncode, done.stdout, done.stderr


def test_groups_signs_with_the_secret_of_the_gateway_started_here(
    dev_gateway: tuple[GatewayProcess, Path],
) -> None:
    gw, project = dev_gateway
    code, out, err = in_dir(project, "groups", "--url", gw.base_url, "add", "ann", "red")
    assert (code, out) == (0, "changed\n"), err
    code, out, err = in_dir(project, "groups", "--url", gw.base_url, "list", "ann")
    assert (code, out) == (0, "red\tred\n"), err


def test_groups_elsewhere_says_what_to_do_and_leaves_nothing_behind(
    dev_gateway: tuple[GatewayProcess, Path], tmp_path: Path,
) -> None:
    gw, _ = dev_gateway
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code, out, err = in_dir(elsewhere, "groups", "--url", gw.base_url, "add", "ann", "red")
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"roomcast: the gateway at {gw.base_url} wants credentials (missing_token); no "
        f"JWT_SECRET, and no development secret at {elsewhere}/.roomcast-dev-secret: run this "
        "in the directory where `roomcast serve` runs, or set JWT_SECRET (or "
        "ROOMCAST_DEV_SECRET_FILE) to the gateway's secret, or pass --api-key"
    ]
    assert list(elsewhere.iterdir()) == []


def test_a_stale_development_secret_is_named_on_a_401(
    dev_gateway: tuple[GatewayProcess, Path], tmp_path: Path,
) -> None:
    gw, _ = dev_gateway
    stale = tmp_path / "old-checkout"
    stale.mkdir()
    dev_secret(str(stale / ".roomcast-dev-secret"))  # another gateway's, long ago
    for args in (["groups", "--url", gw.base_url, "add", "ann", "red"],
                 ["publish", "--url", gw.base_url, "--all"]):
        code, out, err = in_dir(stale, *args)
        assert (code, out) == (1, ""), err
        assert err.splitlines() == [
            f"roomcast: the gateway at {gw.base_url} rejected a token signed with the "
            f"development secret in {stale}/.roomcast-dev-secret (bad_signature): it runs "
            "with another secret; set JWT_SECRET to the gateway's secret (or pass --api-key)"
        ], args


async def test_publish_and_token_use_the_gateway_secret(
    dev_gateway: tuple[GatewayProcess, Path], tmp_path: Path,
) -> None:
    gw, project = dev_gateway
    secret = (project / ".roomcast-dev-secret").read_text().strip()
    async with Client(gw.ws_url, token=make_token(secret, "bob")) as bob:
        messages = bob.messages("message")
        code, out, err = await asyncio.to_thread(
            in_dir, project, "publish", "--url", gw.base_url, "--user", "bob",
            "--data", '{"text": "hi"}')
        assert code == 0, err
        assert out.startswith("sent ") and out.endswith(" to 1 connection(s), stored in user:bob\n")
        async with asyncio.timeout(15):
            message = await anext(messages)
        assert message.data["text"] == "hi"

    code, token, err = await asyncio.to_thread(in_dir, project, "token", "--user", "carol")
    assert code == 0, err
    async with Client(gw.ws_url, token=token.strip()) as carol:
        assert carol.user_id == "carol"

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for args in (["publish", "--url", gw.base_url, "--all"], ["token", "--user", "carol"]):
        code, out, err = in_dir(elsewhere, *args)
        assert (code, out) == (2, ""), err
        assert "no development secret at" in err and "JWT_SECRET" in err
    assert list(elsewhere.iterdir()) == []
