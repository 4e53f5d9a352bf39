"""Tokens for tests, in the Go gateway's format."""

from __future__ import annotations

import time
from typing import Any

import jwt

from roomcast.auth import mint_token


def make_token(secret: str, user_id: str, **kw: Any) -> str:
    """A valid token (see :func:`roomcast.auth.mint_token` for the keywords)."""
    return mint_token(secret, user_id, **kw)


def raw_token(secret: str, claims: dict[str, Any], *, algorithm: str = "HS256") -> str:
    """A token with exactly these claims (for expired, tampered or odd tokens)."""
    base = {"iat": int(time.time()), "iss": "go-falcon"}
    return jwt.encode({**base, **claims}, secret, algorithm=algorithm)
