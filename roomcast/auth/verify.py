"""Verifying tokens: a :class:`TokenVerifier` turns a JWT into :class:`Claims` or refuses it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import jwt

from roomcast.auth import jws
from roomcast.auth.claims import Claims, claims_from_payload
from roomcast.auth.keys import Key, KeySource, SecretKeys
from roomcast.auth.request import TokenCandidate, TokenSource
from roomcast.exceptions import AuthError

ALGORITHM = "HS256"
#: Distinct verified token headers remembered (a key rotation adds one per ``kid``).
_MAX_HEADERS = 64


class TokenVerifier(Protocol):
    """Verifies one token.

    ``verify`` is async so a verifier may fetch keys (a JWKS provider); it raises
    :class:`AuthError` with a short reason (a metrics label) and never logs the token.
    """

    async def start(self) -> None:
        """Load keys; called once before the first ``verify``."""

    async def close(self) -> None:
        """Stop background work."""

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


@dataclass(frozen=True, slots=True)
class ClaimRules:
    """What a verified token's claims must satisfy besides its signature."""

    #: Required ``iss`` (None: not checked).
    issuer: str | None = None
    #: Accepted ``aud`` values; the token must name one (empty: not checked).
    audience: tuple[str, ...] = ()
    #: Seconds of clock skew allowed on ``exp``, ``nbf`` and ``iat``.
    leeway: float = 0.0
    #: The claim naming the user: ``user_id`` (Go gateway) or ``sub`` (most providers).
    user_claim: str = "user_id"


# PyJWT's exceptions, most specific first, as refusal reasons (metrics labels).
_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not_yet_valid"),
    (jwt.InvalidSignatureError, "bad_signature"),
    (jwt.InvalidIssuerError, "bad_issuer"),
    (jwt.InvalidAudienceError, "bad_audience"),
    (jwt.InvalidAlgorithmError, "bad_algorithm"),
    (jwt.MissingRequiredClaimError, "missing_claim"),
    (jwt.InvalidKeyError, "bad_key"),
)


class JwtVerifier:
    """Verifies JWTs against key sources, each with its explicit algorithms.

    The token's ``alg`` header only selects among the sources that list it; a source
    never verifies any other algorithm, and ``none`` is in no list.
    """

    def __init__(self, sources: Iterable[KeySource], rules: ClaimRules | None = None) -> None:
        self.sources = tuple(sources)
        self.rules = rules or ClaimRules()
        #: ``alg`` and ``kid`` of header segments seen in verified tokens: an issuer
        #: signs every token with one header, and decoding it (PyJWT checks the whole
        #: token's alphabet byte by byte) was a third of a verification.
        self._headers: dict[str, tuple[str, str | None]] = {}
        self._jwt = jws.decoder()

    async def start(self) -> None:
        for source in self.sources:
            await source.start()

    async def close(self) -> None:
        for source in self.sources:
            await source.close()

    async def verify(self, token: str) -> Claims:
        # A JWT is ASCII; other bytes in a header or cookie reach us as lone surrogates.
        if not token.isascii():
            raise AuthError("malformed_token")
        segment = token.partition(".")[0]
        alg, kid = self._alg_and_kid(segment, token)
        sources = [s for s in self.sources if alg in s.algorithms]
        if not sources:
            raise AuthError("bad_algorithm")
        first: AuthError | None = None
        for source in sources:
            try:
                claims = self._decode(token, await source.key(alg, kid), alg)
            except AuthError as exc:
                first = first or exc
                continue
            if segment not in self._headers and len(self._headers) < _MAX_HEADERS:
                self._headers[segment] = (alg, kid)
            return claims
        assert first is not None
        raise first

    def _alg_and_kid(self, segment: str, token: str) -> tuple[str, str | None]:
        """The header's ``alg`` and ``kid``, remembered for headers that verified."""
        known = self._headers.get(segment)
        if known is not None:
            return known
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("malformed_token") from None
        alg, kid = header.get("alg"), header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthError("malformed_token")
        if not isinstance(alg, str):
            raise AuthError("bad_algorithm")
        return alg, kid

    def _decode(self, token: str, key: Key, alg: str) -> Claims:
        rules = self.rules
        try:
            payload: dict[str, Any] = self._jwt.decode(
                token,
                key,
                algorithms=[alg],
                issuer=rules.issuer,
                audience=list(rules.audience) or None,
                leeway=rules.leeway,
                options={
                    "require": ["exp", rules.user_claim],
                    "verify_iss": rules.issuer is not None,
                    "verify_aud": bool(rules.audience),
                },
            )
        except jwt.PyJWTError as exc:
            reason = next((r for t, r in _REASONS if isinstance(exc, t)), "malformed_token")
            raise AuthError(reason) from None
        digest = hashlib.sha256(token.encode()).hexdigest()[:32]
        return claims_from_payload(payload, user_claim=rules.user_claim, token_id=digest)


def secret_verifier(secret: str, *, issuer: str | None = None) -> JwtVerifier:
    """HS256 with a shared secret, as the Go gateway signs."""
    return JwtVerifier([SecretKeys(secret)], ClaimRules(issuer=issuer))


def decode_token(token: str, secret: str, *, issuer: str | None = None) -> Claims:
    """Verify an HS256 token at once (``exp`` required, ``iss`` checked when configured)."""
    try:
        payload: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=issuer,
            options={"require": ["exp", "user_id"], "verify_iss": issuer is not None},
        )
    except jwt.PyJWTError as exc:
        reason = next((r for t, r in _REASONS if isinstance(exc, t)), "malformed_token")
        raise AuthError(reason) from None
    return claims_from_payload(payload)
