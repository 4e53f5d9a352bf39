"""What a request carries: its token candidates (and where each came from), its Origin."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from roomcast.exceptions import AuthError

COOKIE_NAME = "falcon_auth_token"


class TokenSource(StrEnum):
    """Where a token came from; a cookie rides along on cross-site requests, a header not."""

    BEARER = "bearer"
    COOKIE = "cookie"


@dataclass(frozen=True, slots=True)
class TokenCandidate:
    """One token a request offers, in the order it should be tried."""

    token: str
    source: TokenSource


def token_candidates(
    headers: Mapping[str, str], cookies: Mapping[str, str]
) -> list[TokenCandidate]:
    """The tokens a request offers, to be tried in order (never empty).

    ``Authorization: Bearer`` first, then the ``falcon_auth_token`` cookie (as in Go).

    Raises:
        AuthError: ``malformed_authorization`` or ``missing_token``.
    """
    auth = headers.get("Authorization", "")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthError("malformed_authorization")
        return [TokenCandidate(value.strip(), TokenSource.BEARER)]
    token = cookies.get(COOKIE_NAME, "")
    if not token:
        raise AuthError("missing_token")
    return [TokenCandidate(token, TokenSource.COOKIE)]


def extract_token(headers: Mapping[str, str], cookies: Mapping[str, str]) -> str:
    """The first token candidate of a request (see :func:`token_candidates`)."""
    return token_candidates(headers, cookies)[0].token


def origin_allowed(origin: str | None, allowed: frozenset[str], own_origin: str) -> bool:
    """Go gateway flaw fixed: only listed origins (or our own) may open a browser socket.

    A request without Origin comes from a non-browser client and is allowed.
    """
    if origin is None:
        return True
    origin = origin.rstrip("/").lower()
    return origin == own_origin.lower() or origin in allowed or "*" in allowed
