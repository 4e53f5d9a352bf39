"""Tokens in the Go gateway's format, for development, tests and backends."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from roomcast.exceptions import ConfigError

DEFAULT_ISSUER = "go-falcon"
#: What a private key signs by default, by type (EC by curve).
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def mint_token(
    secret: str | PrivateKey,
    user_id: str,
    *,
    name: str | None = None,
    character_id: int | None = None,
    groups: Iterable[str] | None = None,
    scopes: str = "",
    ttl: float = 3600,
    issuer: str = DEFAULT_ISSUER,
    algorithm: str = "HS256",
    kid: str | None = None,
    user_claim: str = "user_id",
    audience: str | None = None,
) -> str:
    """A token with the Go gateway's claims: HS256 with a secret, or signed with a
    private key (``algorithm`` RS256, ES256, EdDSA, ...) as an identity provider would.

    ``user_claim`` other than ``user_id`` (e.g. ``sub``) names the user there too.
    """
    now = int(time.time())
    claims: dict[str, Any] = {
        "user_id": user_id,
        "character_id": character_id if character_id is not None else 0,
        "character_name": name or user_id,
        "scopes": scopes,
        "iat": now,
        "exp": now + int(ttl),
        "iss": issuer,
    }
    claims[user_claim] = user_id
    if audience is not None:
        claims["aud"] = audience
    if groups is not None:
        claims["groups"] = list(groups)
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(claims, secret, algorithm=algorithm, headers=headers)


def load_private_key(pem: bytes, algorithm: str | None = None) -> tuple[PrivateKey, str]:
    """A PEM private key (RSA, EC, Ed25519) and the algorithm it signs with.

    Without ``algorithm`` the key decides: RSA -> RS256, EC -> ES256/384/512 by curve,
    Ed25519 -> EdDSA.

    Raises:
        ConfigError: not an unencrypted PEM private key of a supported type, or an
            algorithm that key cannot sign.
    """
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"not an unencrypted PEM private key ({exc})") from None
    family: tuple[str, ...]
    if isinstance(key, rsa.RSAPrivateKey):
        default, family = "RS256", ("RS", "PS")
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        default, family = "EdDSA", ("EdDSA",)
    elif isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in _EC_ALGORITHMS:
        default, family = _EC_ALGORITHMS[key.curve.name], (_EC_ALGORITHMS[key.curve.name],)
    else:
        raise ConfigError("only RSA, EC (P-256/384/521) and Ed25519 private keys are supported")
    chosen = algorithm or default
    if not chosen.startswith(family):
        raise ConfigError(f"a {type(key).__name__.removeprefix('_')} cannot sign {chosen}")
    return key, chosen
