"""Who is connecting: token extraction and Origin, verification, claims, minting.

- :mod:`roomcast.auth.request`: where a request's token candidates come from, and Origin.
- :mod:`roomcast.auth.verify`: verifying a token into :class:`Claims`.
- :mod:`roomcast.auth.keys`, :mod:`roomcast.auth.jwks`: key sources (secret, PEM, JWKS).
- :mod:`roomcast.auth.providers`: the verifier the settings describe.
- :mod:`roomcast.auth.claims`: the claims roomcast reads, and who is an administrator.
- :mod:`roomcast.auth.mint`: tokens in the Go gateway's format (development, tests, CLI).
"""

from roomcast.auth.claims import Claims, is_admin
from roomcast.auth.mint import DEFAULT_ISSUER, mint_token
from roomcast.auth.request import (
    COOKIE_NAME,
    TokenCandidate,
    TokenSource,
    extract_token,
    origin_allowed,
    token_candidates,
)
from roomcast.auth.verify import (
    ALGORITHM,
    Authenticated,
    ClaimRules,
    JwtVerifier,
    TokenVerifier,
    authenticate,
    decode_token,
    secret_verifier,
)

__all__ = [
    "ALGORITHM",
    "COOKIE_NAME",
    "DEFAULT_ISSUER",
    "Authenticated",
    "ClaimRules",
    "Claims",
    "JwtVerifier",
    "TokenCandidate",
    "TokenSource",
    "TokenVerifier",
    "authenticate",
    "decode_token",
    "extract_token",
    "is_admin",
    "mint_token",
    "origin_allowed",
    "secret_verifier",
    "token_candidates",
]
