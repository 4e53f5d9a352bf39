"""Tokens in the Go gateway's format, for development, tests and backends."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import jwt

DEFAULT_ISSUER = "go-falcon"


def mint_token(
    secret: str,
    user_id: str,
    *,
    name: str | None = None,
    character_id: int | None = None,
    groups: Iterable[str] | None = None,
    scopes: str = "",
    ttl: float = 3600,
    issuer: str = DEFAULT_ISSUER,
) -> str:
    """An HS256 token with the Go gateway's claims."""
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
    if groups is not None:
        claims["groups"] = list(groups)
    return jwt.encode(claims, secret, algorithm="HS256")
