"""The verifier the settings describe: a shared secret, a PEM public key, a JWKS URL."""

from __future__ import annotations

from urllib.parse import urlsplit

from roomcast.auth.jwks import JwksKeys
from roomcast.auth.keys import KeySource, PublicKeyFile, SecretKeys
from roomcast.auth.verify import ClaimRules, JwtVerifier
from roomcast.config import Settings
from roomcast.exceptions import ConfigError


def build_verifier(settings: Settings) -> JwtVerifier:
    """Every configured key source, each with its own algorithms, and the claim rules.

    Raises:
        ConfigError: no key source, an unreadable key, or an algorithm a source may not use.
    """
    sources: list[KeySource] = []
    if settings.jwt_secret is not None:
        sources.append(SecretKeys(settings.jwt_secret, settings.jwt_secret_algorithms))
    if settings.jwt_public_key is not None:
        sources.append(
            PublicKeyFile.from_file(settings.jwt_public_key, settings.jwt_public_key_algorithms)
        )
    if settings.jwks_url is not None:
        if urlsplit(settings.jwks_url).scheme not in ("http", "https"):
            raise ConfigError("ROOMCAST_JWKS_URL must be an http:// or https:// URL")
        sources.append(
            JwksKeys(
                settings.jwks_url,
                settings.jwks_algorithms,
                refresh_interval=settings.jwks_refresh,
                min_fetch_interval=settings.jwks_min_interval,
            )
        )
    if not sources:
        raise ConfigError("no token key: set JWT_SECRET, ROOMCAST_JWT_PUBLIC_KEY or a JWKS URL")
    rules = ClaimRules(
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        leeway=settings.jwt_leeway,
        user_claim=settings.jwt_user_claim,
    )
    return JwtVerifier(sources, rules)
