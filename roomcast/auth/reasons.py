"""What each refusal reason means, in words for people (API details, refresh errors)."""

from __future__ import annotations

MESSAGES = {
    "missing_token": "credentials required: X-API-Key, a Bearer token or the login cookie",
    "malformed_authorization": "the Authorization header must be 'Bearer <token>'",
    "expired": "the token has expired",
    "bad_signature": "the token's signature is invalid",
    "bad_issuer": "the token's issuer is not accepted",
    "bad_algorithm": "the token's algorithm is not accepted",
    "bad_audience": "the token's audience is not accepted",
    "unknown_key": "the token's signing key is unknown",
    "not_yet_valid": "the token is not valid yet",
    "bad_key": "the token's key cannot verify it",
    "missing_claim": "the token lacks a required claim",
    "bad_claims": "the token's claims are malformed",
    "malformed_token": "the token is not a valid JWT",
    "other_user": "the token is for another user than the connection's",
    "revoked": "the user was logged out everywhere; tokens issued before that are refused",
    "kicked": "disconnected by an administrator; try again later",
}


def describe(reason: str) -> str:
    return MESSAGES.get(reason, "invalid token")
