"""The tuned PyJWT decodes exactly as PyJWT does: same segment rules, same key rules."""

from __future__ import annotations

import time

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from roomcast.auth import jws

SECRET = "unit-secret-0123456789abcdef0123456789"
LONG_SECRET = "a-longer-secret-for-hs512-" + "0123456789abcdef" * 3
SEGMENT_BYTES = st.binary(max_size=12) | st.text(
    alphabet="AZaz09-_=!+/ .\n", max_size=12).map(str.encode)


def _outcome(decode: object, segment: bytes) -> bytes | str:
    try:
        return decode(segment, "payload")  # type: ignore[operator, no-any-return]
    except jwt.DecodeError as exc:
        return str(exc)


def test_this_pyjwt_is_tuned() -> None:
    # Fails when a PyJWT upgrade moved what jws.py replaces: look at it again then.
    assert jws.tuned()
    assert isinstance(jws.decoder()._jws, jws._Jws)


@given(SEGMENT_BYTES)
def test_segments_are_judged_as_pyjwt_judges_them(segment: bytes) -> None:
    ours = _outcome(jws._Jws._decode_base64url_segment, segment)
    theirs = _outcome(jwt.PyJWS._decode_base64url_segment, segment)
    assert ours == theirs


@pytest.mark.parametrize("segment", [b"!!!!", b"ab!c", b"abc===", b"a", b"ab=", b"abc=",
                                     b"ab==", b"YWJj", b"YW Jj"])
def test_known_segments_agree(segment: bytes) -> None:
    assert _outcome(jws._Jws._decode_base64url_segment, segment) == \
        _outcome(jwt.PyJWS._decode_base64url_segment, segment)


def test_tokens_verify_and_fail_as_with_pyjwt() -> None:
    decoder = jws.decoder()
    claims = {"user_id": "u", "exp": int(time.time()) + 60}
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    for _ in range(2):  # the second time with the key remembered
        assert decoder.decode(token, SECRET, algorithms=["HS256"])["user_id"] == "u"
    other = jwt.encode(claims, LONG_SECRET, algorithm="HS512")
    assert decoder.decode(other, LONG_SECRET, algorithms=["HS512"])["user_id"] == "u"
    with pytest.raises(jwt.InvalidSignatureError):
        decoder.decode(token, "wrong-secret-0123456789abcdef0123456", algorithms=["HS256"])
    head, body, sig = token.split(".")
    with pytest.raises(jwt.DecodeError):
        decoder.decode(f"{head}.{body}.{sig}!", SECRET, algorithms=["HS256"])
    with pytest.raises(jwt.ExpiredSignatureError):
        decoder.decode(jwt.encode({**claims, "exp": 1}, SECRET, algorithm="HS256"), SECRET,
                       algorithms=["HS256"])


def test_asymmetric_keys_are_still_refused_as_hmac_secrets() -> None:
    decoder = jws.decoder()
    pem = ("-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n"
           "-----END PUBLIC KEY-----\n")
    token = jwt.encode({"user_id": "u"}, SECRET, algorithm="HS256")
    for _ in range(2):
        with pytest.raises(jwt.InvalidKeyError):
            decoder.decode(token, pem, algorithms=["HS256"])
