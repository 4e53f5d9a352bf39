"""The verifier remembers the header of tokens that verified; it never trusts more than it."""

from __future__ import annotations

import time

import jwt
import pytest

from roomcast.auth.verify import JwtVerifier, secret_verifier
from roomcast.exceptions import AuthError

SECRET = "unit-secret-0123456789abcdef0123456789"


def _token(user: str, secret: str = SECRET, **header: str) -> str:
    claims = {"user_id": user, "exp": int(time.time()) + 600}
    return jwt.encode(claims, secret, algorithm="HS256", headers=header or None)


async def _reason(verifier: JwtVerifier, token: str) -> str:
    with pytest.raises(AuthError) as caught:
        await verifier.verify(token)
    return caught.value.reason


async def test_a_known_header_still_needs_a_valid_signature_and_payload() -> None:
    verifier = secret_verifier(SECRET)
    assert (await verifier.verify(_token("a"))).user_id == "a"
    assert len(verifier._headers) == 1
    assert (await verifier.verify(_token("b"))).user_id == "b"  # the same header: remembered
    header, payload, signature = _token("c").split(".")
    forged = _token("d").split(".")[1]
    assert await _reason(verifier, f"{header}.{forged}.{signature}") == "bad_signature"
    assert await _reason(verifier, f"{header}.{payload}!.{signature}") == "malformed_token"
    assert await _reason(verifier, f"{header}.{payload}") == "malformed_token"
    assert await _reason(verifier, _token("e", secret="other-secret-0123456789abcdef0123")) \
        == "bad_signature"


async def test_headers_of_refused_tokens_are_not_remembered() -> None:
    verifier = secret_verifier(SECRET)
    bad = _token("a", secret="other-secret-0123456789abcdef0123", kid="k1")
    assert await _reason(verifier, bad) == "bad_signature"
    assert verifier._headers == {}
    assert await _reason(verifier, "!!!." + bad.split(".", 1)[1]) == "malformed_token"
    assert verifier._headers == {}
