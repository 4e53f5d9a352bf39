"""Identity providers: PEM public keys, a JWKS URL (rotation, outage, unknown-kid flood),
explicit algorithms (no confusion, no ``alg: none``), aud/iss, leeway and the user claim."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import GatewayFactory
from tests.core.support import eventually, unique
from tests.helpers.gateway import GatewayProcess
from tests.helpers.ws import connect_peer
from tests.identity.keys import JwksServer, KeyPair
from tests.identity.support import ACCEPTED, verdict


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _forge(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None) -> str:
    """A token signed by hand with HMAC-SHA256 over ``secret`` (or unsigned for None)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    if secret is None:
        return signing_input + "."
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def _claims(user: str) -> dict[str, Any]:
    return {"user_id": user, "iat": int(time.time()), "exp": int(time.time()) + 600}


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    server = JwksServer(KeyPair.generate("RS256"), KeyPair.generate("ES256")).start()
    yield server
    server.stop()


def _idp_only(**env: str) -> dict[str, str]:
    """Settings of a gateway that trusts an identity provider and no shared secret."""
    return {"JWT_SECRET": "", **env}


# -- PEM public keys -------------------------------------------------------------


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
async def test_a_pem_public_key_verifies_its_own_algorithm(
    gateway_factory: GatewayFactory, tmp_path: Path, alg: str
) -> None:
    key, other = KeyPair.generate(alg), KeyPair.generate(alg)
    gw = gateway_factory(_idp_only(ROOMCAST_JWT_PUBLIC_KEY=str(key.write_public(tmp_path))))
    user = unique("pem")
    peer = await connect_peer(gw, user, token=key.token(user))
    assert peer.welcome["data"]["user_id"] == user
    await peer.close()
    assert await verdict(gw, other.token(user)) == (401, "bad_signature")
    # No secret is generated and the dev login stays off: nobody can mint tokens here.
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(f"{gw.base_url}/login")).status_code == 404


async def test_an_explicit_list_binds_the_key_to_those_algorithms(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    key = KeyPair.generate("RS256")
    gw = gateway_factory(_idp_only(ROOMCAST_JWT_PUBLIC_KEY=str(key.write_public(tmp_path)),
                                   ROOMCAST_JWT_PUBLIC_KEY_ALGORITHMS="PS256"))
    user = unique("ps")
    assert await verdict(gw, key.token(user)) == (401, "bad_algorithm")
    ps256 = KeyPair("PS256", key.private, key.kid)
    assert await verdict(gw, ps256.token(user)) == ACCEPTED


@pytest.mark.parametrize("algorithms", ["HS256", "none", "ES256"])
def test_a_public_key_with_an_algorithm_it_cannot_verify_is_a_config_error(
    gateway_factory: GatewayFactory, tmp_path: Path, algorithms: str
) -> None:
    key = KeyPair.generate("RS256")
    gw = gateway_factory(_idp_only(ROOMCAST_JWT_PUBLIC_KEY=str(key.write_public(tmp_path)),
                                   ROOMCAST_JWT_PUBLIC_KEY_ALGORITHMS=algorithms), start=False)
    with pytest.raises(RuntimeError, match="exited at start"):
        gw.start()
    assert "public key" in gw.log() and algorithms in gw.log()


# -- algorithm confusion and alg none -----------------------------------------------


@pytest.mark.parametrize("with_secret", [False, True], ids=["idp-only", "idp-and-secret"])
async def test_algorithm_confusion_and_alg_none_are_refused(
    gateway_factory: GatewayFactory, tmp_path: Path, jwks: JwksServer, with_secret: bool
) -> None:
    pem_key = KeyPair.generate("RS256")
    env = {"ROOMCAST_JWT_PUBLIC_KEY": str(pem_key.write_public(tmp_path)),
           "ROOMCAST_JWKS_URL": jwks.url}
    gw = gateway_factory(env if with_secret else _idp_only(**env))
    user = unique("confused")
    jwks_key = jwks.keys[0]
    hs = {"bad_signature"} if with_secret else {"bad_algorithm"}
    attempts = {
        # The public key's PEM text used as an HS256 secret: only the secret (if any) may
        # verify HS256, and it is not the PEM.
        "pem as hmac secret": (_forge({"alg": "HS256", "typ": "JWT"}, _claims(user),
                                      pem_key.public_pem()), hs),
        "jwk as hmac secret": (_forge({"alg": "HS256", "kid": jwks_key.kid}, _claims(user),
                                      json.dumps(jwks_key.jwk()).encode()), hs),
        "alg none": (_forge({"alg": "none", "typ": "JWT"}, _claims(user), None),
                     {"bad_algorithm"}),
        "alg none with a kid": (_forge({"alg": "none", "kid": jwks_key.kid}, _claims(user),
                                       None), {"bad_algorithm"}),
        "alg None": (_forge({"alg": "None"}, _claims(user), None), {"bad_algorithm"}),
        # An RS256 token presented under the ES256 key's kid: the EC key never checks
        # RS256; the PEM key (RS256 too) finds the signature is not its own.
        "kid of another key type": (jwks_key.token(user, kid=jwks.keys[1].kid),
                                    {"bad_signature", "unknown_key"}),
    }
    for name, (token, reasons) in attempts.items():
        status, reason = await verdict(gw, token)
        assert status == 401 and reason in reasons, (name, status, reason)
    # Everything genuine still works.
    assert await verdict(gw, pem_key.token(user)) == ACCEPTED
    assert await verdict(gw, jwks_key.token(user)) == ACCEPTED


# -- JWKS -------------------------------------------------------------------------


async def test_jwks_rotation_is_picked_up_without_restart(
    gateway_factory: GatewayFactory, jwks: JwksServer
) -> None:
    gw = gateway_factory(_idp_only(ROOMCAST_JWKS_URL=jwks.url, ROOMCAST_JWKS_MIN_INTERVAL="0"))
    old, user = jwks.keys[0], unique("rot")
    assert await verdict(gw, old.token(user)) == ACCEPTED
    new = KeyPair.generate("EdDSA")
    jwks.keys = [new]
    # An unknown kid makes the gateway fetch the set again, at once.
    peer = await connect_peer(gw, user, token=new.token(user))
    assert peer.welcome["data"]["user_id"] == user
    await peer.close()
    # The provider dropped the old key: it stopped working with that fetch.
    assert await verdict(gw, old.token(user)) == (401, "unknown_key")


async def test_background_refresh_picks_up_new_keys(
    gateway_factory: GatewayFactory, jwks: JwksServer
) -> None:
    gw = gateway_factory(_idp_only(ROOMCAST_JWKS_URL=jwks.url, ROOMCAST_JWKS_REFRESH="0.2",
                                   ROOMCAST_JWKS_MIN_INTERVAL="3600"))
    new, user = KeyPair.generate("ES256"), unique("bg")
    jwks.keys = [*jwks.keys, new]
    seen = jwks.fetches()
    await eventually(lambda: jwks.fetches() > seen + 1, "two background fetches")
    assert await verdict(gw, new.token(user)) == ACCEPTED


async def test_cached_keys_keep_working_while_the_jwks_url_is_down(
    gateway_factory: GatewayFactory, jwks: JwksServer
) -> None:
    gw = gateway_factory(_idp_only(ROOMCAST_JWKS_URL=jwks.url, ROOMCAST_JWKS_REFRESH="0.2",
                                   ROOMCAST_JWKS_MIN_INTERVAL="0"))
    key, user = jwks.keys[0], unique("down")
    jwks.failing = True
    seen = jwks.fetches()
    await eventually(lambda: jwks.fetches() > seen + 1, "refreshes failing")
    peer = await connect_peer(gw, user, token=key.token(user))
    await peer.close()
    unknown = KeyPair.generate("RS256")
    assert await verdict(gw, unknown.token(user)) == (401, "unknown_key")
    failures = [e for e in _events(gw) if e.get("event") == "jwks_fetch_failed"]
    assert failures and failures[-1]["cached_keys"] == 2
    # Back up: the new key is fetched on first use.
    jwks.keys.append(unknown)
    jwks.failing = False
    assert await verdict(gw, unknown.token(user)) == ACCEPTED


async def test_an_unknown_kid_flood_costs_one_fetch_per_interval(
    gateway_factory: GatewayFactory, jwks: JwksServer
) -> None:
    gw = gateway_factory(_idp_only(ROOMCAST_JWKS_URL=jwks.url,
                                   ROOMCAST_JWKS_MIN_INTERVAL="3600"))
    seen = jwks.fetches()
    stranger = KeyPair.generate("RS256")
    for _ in range(40):
        token = stranger.token(unique("flood"), kid=uuid.uuid4().hex)
        assert await verdict(gw, token) == (401, "unknown_key")
    # The start-up fetch was the last one this interval allows.
    assert jwks.fetches() == seen
    # Known keys are unaffected by the flood.
    assert await verdict(gw, jwks.keys[1].token(unique("ok"))) == ACCEPTED


async def test_an_unknown_kid_flood_with_a_short_interval_is_still_bounded(
    gateway_factory: GatewayFactory, jwks: JwksServer
) -> None:
    import asyncio

    gw = gateway_factory(_idp_only(ROOMCAST_JWKS_URL=jwks.url,
                                   ROOMCAST_JWKS_MIN_INTERVAL="0"))
    seen = jwks.fetches()
    stranger = KeyPair.generate("RS256")
    # Concurrent unknown kids share one fetch in flight.
    results = await asyncio.gather(*(
        verdict(gw, stranger.token(unique("flood"), kid=uuid.uuid4().hex)) for _ in range(30)))
    assert all(r == (401, "unknown_key") for r in results)
    assert 1 <= jwks.fetches() - seen < 30


# -- claims -----------------------------------------------------------------------


async def test_sub_audience_issuer_and_leeway(
    gateway_factory: GatewayFactory, jwks: JwksServer
) -> None:
    gw = gateway_factory(_idp_only(
        ROOMCAST_JWKS_URL=jwks.url, ROOMCAST_JWT_USER_CLAIM="sub",
        ROOMCAST_JWT_AUDIENCE="roomcast,chat", JWT_ISSUER="https://idp.example",
        ROOMCAST_JWT_LEEWAY="60"))
    key, user = jwks.keys[0], unique("sub")
    good: dict[str, Any] = {"sub": user, "aud": "chat", "iss": "https://idp.example"}
    peer = await connect_peer(gw, user, token=key.token("ignored", **good))
    assert peer.welcome["data"]["user_id"] == user
    await peer.close()
    now = int(time.time())
    cases: dict[str, tuple[dict[str, Any], str]] = {
        "wrong audience": ({**good, "aud": "other"}, "bad_audience"),
        "no audience": ({"sub": user, "iss": "https://idp.example"}, "missing_claim"),
        "wrong issuer": ({**good, "iss": "https://evil.example"}, "bad_issuer"),
        "no sub": ({"aud": "chat", "iss": "https://idp.example"}, "missing_claim"),
        "expired past the leeway": ({**good, "exp": now - 120}, "expired"),
    }
    for name, (claims, reason) in cases.items():
        token = key.token("x", **claims)
        assert await verdict(gw, token) == (401, reason), name
    # Within the leeway an expired token still passes.
    assert await verdict(gw, key.token("x", **{**good, "exp": now - 5})) == ACCEPTED


def _events(gw: GatewayProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in gw.log().splitlines() if line.startswith("{")]
