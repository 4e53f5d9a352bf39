"""``roomcast token`` end to end: a real process, tokens checked and used."""

from __future__ import annotations

from pathlib import Path

import pytest

from roomcast.auth import decode_token
from roomcast.client import Client
from tests.cli.support import cli_env, roomcast
from tests.helpers.gateway import GatewayProcess

SECRET = "a-test-secret-of-enough-length-0123456789"


def test_mints_a_token_with_every_claim() -> None:
    done = roomcast(
        "token",
        "--user",
        "u-1",
        "--name",
        "Alice",
        "--character-id",
        "42",
        "--groups",
        "ops, dev",
        "--admin",
        "--scopes",
        "read",
        "--ttl",
        "15m",
        env=cli_env(JWT_SECRET=SECRET),
    )
    assert done.returncode == 0, done.stderr
    claims = decode_token(done.stdout.strip(), SECRET, issuer="go-falcon")
    assert claims.user_id == "u-1"
    assert (claims.character_name, claims.character_id) == ("Alice", 42)
    assert [g.id for g in claims.groups] == ["ops", "dev"]
    assert claims.scopes == {"read", "websocket:admin"}


def test_ttl_units() -> None:
    import jwt

    for ttl, seconds in (("90", 90), ("30s", 30), ("2h", 7200), ("1d", 86400)):
        done = roomcast("token", "--user", "u", "--ttl", ttl, "--secret", SECRET)
        payload = jwt.decode(done.stdout.strip(), SECRET, algorithms=["HS256"], issuer="go-falcon")
        assert payload["exp"] - payload["iat"] == seconds


def test_secret_flag_wins_over_the_environment() -> None:
    done = roomcast(
        "token",
        "--user",
        "u",
        "--secret",
        SECRET,
        env=cli_env(JWT_SECRET="another-secret-entirely-0123456789"),
    )
    assert decode_token(done.stdout.strip(), SECRET).user_id == "u"


def test_without_a_secret_uses_the_development_secret(tmp_path: Path) -> None:
    secret_file = tmp_path / "dev-secret"
    done = roomcast(
        "token",
        "--user",
        "u",
        env=cli_env(ROOMCAST_DEV_SECRET_FILE=str(secret_file), ROOMCAST_DB=str(tmp_path / "db")),
    )
    assert done.returncode == 0, done.stderr
    assert "development secret" in done.stderr
    assert decode_token(done.stdout.strip(), secret_file.read_text().strip()).user_id == "u"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ttl", "soon"], "invalid duration"),
        (["--ttl", "0"], "invalid duration"),
        (["--secret", "short"], "at least 16 characters"),
    ],
)
def test_bad_arguments_fail_with_a_clear_message(args: list[str], message: str) -> None:
    done = roomcast("token", "--user", "u", *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == ""


def test_user_is_required() -> None:
    done = roomcast("token", "--secret", SECRET)
    assert done.returncode == 2
    assert "--user" in done.stderr


async def test_a_minted_token_opens_a_gateway_connection(gateway: GatewayProcess) -> None:
    done = roomcast("token", "--user", "cli-user", "--groups", "ops", "--secret", gateway.secret)
    async with Client(gateway.ws_url, token=done.stdout.strip()) as client:
        await client.room("group:ops").wait_joined()
        assert client.user_id == "cli-user"
