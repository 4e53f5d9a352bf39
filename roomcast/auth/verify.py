"""Verifying tokens: a :class:`TokenVerifier` turns a JWT into :class:`Claims` or refuses it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import jwt

from roomcast.auth.claims import Claims, claims_from_payload
from roomcast.auth.request import TokenCandidate, TokenSource
from roomcast.exceptions import AuthError

ALGORITHM = "HS256"


class TokenVerifier(Protocol):
    """Verifies one token.

    ``verify`` is async so a verifier may fetch keys (a JWKS provider); it raises
    :class:`AuthError` with a short reason (a metrics label) and never logs the token.
    """

    async def verify(self, token: str) -> Claims: ...


@dataclass(frozen=True, slots=True)
class Authenticated:
    """The claims of the candidate that verified, and where that token came from."""

    claims: Claims
    source: TokenSource


async def authenticate(
    candidates: Sequence[TokenCandidate], verifier: TokenVerifier
) -> Authenticated:
    """The first candidate that verifies.

    Raises:
        AuthError: the first candidate's refusal when none verifies.
    """
    first: AuthError | None = None
    for candidate in candidates:
        try:
            return Authenticated(await verifier.verify(candidate.token), candidate.source)
        except AuthError as exc:
            first = first or exc
    raise first or AuthError("missing_token")


class SecretVerifier:
    """HS256 with a shared secret, as the Go gateway signs."""

    def __init__(self, secret: str, *, issuer: str | None = None) -> None:
        self._secret = secret
        self._issuer = issuer

    async def verify(self, token: str) -> Claims:
        return decode_token(token, self._secret, issuer=self._issuer)


def decode_token(token: str, secret: str, *, issuer: str | None = None) -> Claims:
    """Verify an HS256 token (``exp`` required, ``iss`` checked when configured)."""
    try:
        payload: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=issuer,
            options={"require": ["exp", "user_id"], "verify_iss": issuer is not None},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("expired") from None
    except jwt.InvalidSignatureError:
        raise AuthError("bad_signature") from None
    except jwt.InvalidIssuerError:
        raise AuthError("bad_issuer") from None
    except jwt.InvalidAlgorithmError:
        raise AuthError("bad_algorithm") from None
    except jwt.MissingRequiredClaimError:
        raise AuthError("missing_claim") from None
    except jwt.InvalidTokenError:
        raise AuthError("malformed_token") from None
    return claims_from_payload(payload)
