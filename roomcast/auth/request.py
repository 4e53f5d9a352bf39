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


#: Most ``falcon_auth_token`` cookies tried in one request (each costs a verification).
MAX_COOKIE_TOKENS = 4


def token_candidates(
    headers: Mapping[str, str], cookies: Mapping[str, str]
) -> list[TokenCandidate]:
    """The tokens a request offers, to be tried in order (never empty).

    ``Authorization: Bearer`` first, then the ``falcon_auth_token`` cookie, as in Go.
    Browsers as they are:

    - an ``Authorization`` header of another scheme (a browser's cached HTTP Basic
      credentials for a staging site) is ignored, as the Go gateway ignores it, and
      the cookie is used;
    - a browser may send two ``falcon_auth_token`` cookies (a host-only and a domain
      cookie, or two paths): all are returned in the order sent, so the first valid
      one wins (the Go gateway reads only the first).

    Raises:
        AuthError: ``missing_token``, or ``malformed_authorization`` for an ignored
            ``Authorization`` header with no cookie to fall back to.
    """
    auth = headers.get("Authorization", "").strip()
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return [TokenCandidate(value.strip(), TokenSource.BEARER)]
    tokens = cookie_values(_all(headers, "Cookie"), COOKIE_NAME)
    if not tokens and cookies.get(COOKIE_NAME):
        tokens = [cookies[COOKIE_NAME]]
    if not tokens:
        raise AuthError("malformed_authorization" if auth else "missing_token")
    return [TokenCandidate(t, TokenSource.COOKIE) for t in tokens[:MAX_COOKIE_TOKENS]]


def _all(headers: Mapping[str, str], name: str) -> list[str]:
    getall = getattr(headers, "getall", None)
    if getall is not None:
        return list(getall(name, []))
    value = headers.get(name)
    return [value] if value is not None else []


def cookie_values(cookie_headers: list[str], name: str) -> list[str]:
    """Every value of cookie ``name`` in ``Cookie`` headers, in the order sent.

    The RFC 6265 cookie-string a browser sends (``a=1; b=2; a=3``); Python's
    ``http.cookies`` keeps only one value per name, so it is split here.
    """
    out = []
    for header in cookie_headers:
        for pair in header.split(";"):
            key, sep, value = pair.strip().partition("=")
            if sep and key.strip() == name:
                value = value.strip()
                if len(value) >= 2 and value[0] == value[-1] == '"':
                    value = value[1:-1]
                if value:
                    out.append(value)
    return out


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
