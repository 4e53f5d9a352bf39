"""``roomcast token`` end to end: a real process, tokens checked and used."""

from __future__ import annotations

import re
from pathlib import Path

import jwt
import pytest

from roomcast.auth import decode_token
from roomcast.client import Client
from roomcast.config import dev_secret
from tests.cli.support import cli_env, roomcast
from tests.conftest import GatewayFactory
from tests.helpers.gateway import GatewayProcess
from tests.identity.keys import KeyPair

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
        assert done.returncode == 0, done.stderr
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
    assert done.returncode == 0, done.stderr
    assert decode_token(done.stdout.strip(), SECRET).user_id == "u"


def test_a_secret_that_starts_with_a_dash() -> None:
    secret = "-" + SECRET
    done = roomcast("token", "--user", "u", f"--secret={secret}")
    assert done.returncode == 0, done.stderr
    assert decode_token(done.stdout.strip(), secret).user_id == "u"
    done = roomcast("token", "--user", "u", env=cli_env(JWT_SECRET=secret))
    assert done.returncode == 0, done.stderr
    assert decode_token(done.stdout.strip(), secret).user_id == "u"


def test_without_a_secret_uses_the_development_secret_of_serve(tmp_path: Path) -> None:
    """The file `roomcast serve` keeps its generated secret in: read, never created."""
    secret_file = tmp_path / "dev-secret"
    env = cli_env(ROOMCAST_DEV_SECRET_FILE=str(secret_file), ROOMCAST_DB=str(tmp_path / "db"))
    done = roomcast("token", "--user", "u", env=env)
    assert done.returncode == 2
    assert done.stdout == ""
    assert f"no JWT_SECRET, and no development secret at {secret_file}" in done.stderr
    assert "run this in the directory where `roomcast serve` runs" in done.stderr
    assert not secret_file.exists()

    secret = dev_secret(str(secret_file))  # what serve does at start-up
    done = roomcast("token", "--user", "u", env=env)
    assert done.returncode == 0, done.stderr
    assert f"signed with the development secret in {secret_file}" in done.stderr
    assert decode_token(done.stdout.strip(), secret).user_id == "u"


def test_the_development_secret_is_found_where_serve_keeps_it(tmp_path: Path) -> None:
    serve_dir, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    serve_dir.mkdir()
    elsewhere.mkdir()
    secret = dev_secret(str(serve_dir / ".roomcast-dev-secret"))
    env = cli_env(ROOMCAST_DB=str(tmp_path / "db"))
    env.pop("ROOMCAST_DEV_SECRET_FILE", None)
    done = roomcast("token", "--user", "u", env=env, cwd=serve_dir)
    assert done.returncode == 0, done.stderr
    assert decode_token(done.stdout.strip(), secret).user_id == "u"
    # From another directory: a clear message, and no new secret left there.
    done = roomcast("token", "--user", "u", env=env, cwd=elsewhere)
    assert done.returncode == 2, done.stderr
    assert "no development secret at" in done.stderr
    assert list(elsewhere.iterdir()) == []


def test_generated_development_secrets_never_look_like_options(tmp_path: Path) -> None:
    # A urlsafe-base64 secret starts with "-" once in 64; 200 of them would show one.
    for n in range(200):
        secret = dev_secret(str(tmp_path / f"secret-{n}"))
        assert re.fullmatch(r"[0-9a-f]{64}", secret), secret


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ttl", "soon"], "invalid duration"),
        (["--ttl", "0"], "invalid duration"),
        (["--secret", "short"], "--secret is too short: an HS256 secret must be at least 32 bytes"),
        (["--secret", "x" * 31], "this one has 31"),
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
    assert done.returncode == 0, done.stderr
    async with Client(gateway.ws_url, token=done.stdout.strip()) as client:
        await client.room("group:ops").wait_joined()
        assert client.user_id == "cli-user"


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
async def test_a_key_file_signs_tokens_an_identity_provider_gateway_accepts(
    gateway_factory: GatewayFactory, tmp_path: Path, alg: str
) -> None:
    key = KeyPair.generate(alg)
    private = tmp_path / "signing.pem"
    private.write_bytes(key.private_pem())
    gw = gateway_factory({"JWT_SECRET": "", "ROOMCAST_JWT_USER_CLAIM": "sub",
                          "ROOMCAST_JWT_PUBLIC_KEY": str(key.write_public(tmp_path))})
    done = roomcast("token", "--user", "idp-user", "--key", str(private), "--kid", "k1",
                    env=cli_env(ROOMCAST_JWT_USER_CLAIM="sub"))
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert jwt.get_unverified_header(token) == {"alg": alg, "kid": "k1", "typ": "JWT"}
    assert jwt.decode(token, options={"verify_signature": False})["sub"] == "idp-user"
    async with Client(gw.ws_url, token=token) as client:
        assert client.user_id == "idp-user"


@pytest.mark.parametrize(
    ("alg", "extra", "message"),
    [
        ("ES256", ["--alg", "RS256"], "cannot sign RS256"),
        ("RS256", ["--secret", SECRET], "give --key or --secret, not both"),
    ],
)
def test_a_key_that_cannot_sign_fails_clearly(
    tmp_path: Path, alg: str, extra: list[str], message: str
) -> None:
    private = tmp_path / "signing.pem"
    private.write_bytes(KeyPair.generate(alg).private_pem())
    done = roomcast("token", "--user", "u", "--key", str(private), *extra)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert done.stdout == ""


def test_an_algorithm_without_a_key_fails_clearly() -> None:
    done = roomcast("token", "--user", "u", "--alg", "RS256", "--secret", SECRET)
    assert done.returncode == 2 and "--alg RS256 needs --key" in done.stderr
