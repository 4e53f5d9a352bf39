"""PyJWT, tuned for verifying many tokens with few keys.

Two costs of PyJWT 2.x dominated a connect storm (a third of a handshake's
instructions): every verification prepares the HMAC key again (checking that it is
not a PEM, SSH or DER key, by trying to parse it) and checks each segment's
alphabet byte by byte in Python. Here the HMAC algorithms are registered again on a
PyJWS of our own (PyJWT's extension point) with the prepared key remembered, and a
segment's alphabet is checked by one regular expression, with the same rules.
Everything else (headers, claims, errors) is PyJWT's.
"""

from __future__ import annotations

import binascii
import hmac
import re
from typing import Any

import jwt
from jwt.algorithms import HMACAlgorithm
from jwt.utils import base64url_decode, base64url_encode

#: The base64url alphabet without padding, as PyJWT accepts it.
_ALPHABET = re.compile(rb"[A-Za-z0-9_-]*")
_HMAC_ALGORITHMS = {
    "HS256": HMACAlgorithm.SHA256,
    "HS384": HMACAlgorithm.SHA384,
    "HS512": HMACAlgorithm.SHA512,
}
#: Distinct HMAC secrets remembered (the configured ones; rotation adds a few).
_MAX_KEYS = 16


class _KeyedHMAC(HMACAlgorithm):
    """HMAC whose prepared keys (and keyed states) are kept for the next token."""

    def __init__(self, hash_alg: Any) -> None:
        super().__init__(hash_alg)
        self._prepared: dict[str | bytes, bytes] = {}
        self._keyed: dict[bytes, Any] = {}

    def prepare_key(self, key: str | bytes) -> bytes:
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = super().prepare_key(key)  # raises for PEM, SSH, DER or JWK keys
            if len(self._prepared) < _MAX_KEYS:
                self._prepared[key] = prepared
        return prepared

    def sign(self, msg: bytes, key: bytes) -> bytes:
        keyed = self._keyed.get(key)
        if keyed is None:
            keyed = hmac.new(key, digestmod=self.hash_alg)
            if len(self._keyed) < _MAX_KEYS:
                self._keyed[key] = keyed
        state = keyed.copy()
        state.update(msg)
        return state.digest()


class _Jws(jwt.PyJWS):
    """PyJWS with the segment check done by a regular expression."""

    @staticmethod
    def _decode_base64url_segment(segment: bytes, name: str) -> bytes:
        # The rules of PyJWT 2.15 (GHSA-hxm8-2xgr-2p9m): at most two '=', and only
        # with a length that is a multiple of 4; no length of 1 mod 4; no byte outside
        # the base64url alphabet; the canonical encoding of what it decodes to.
        stripped = segment.rstrip(b"=")
        padding = len(segment) - len(stripped)
        if (padding > 2 or (padding and len(segment) % 4) or len(stripped) % 4 == 1
                or _ALPHABET.fullmatch(stripped) is None):
            raise jwt.DecodeError(f"Invalid {name} padding")
        try:
            decoded = base64url_decode(stripped)
        except (TypeError, binascii.Error) as err:
            raise jwt.DecodeError(f"Invalid {name} padding") from err
        if base64url_encode(decoded) != stripped:  # one spelling per token (no stray bits)
            raise jwt.DecodeError(f"Invalid {name} padding")
        return decoded


def tuned() -> bool:
    """Whether this PyJWT has the parts replaced here (else :func:`decoder` is PyJWT's own)."""
    return callable(getattr(jwt.PyJWS, "_decode_base64url_segment", None)) and isinstance(
        getattr(jwt.PyJWT(), "_jws", None), jwt.PyJWS)


def decoder() -> jwt.PyJWT:
    """A PyJWT instance whose ``decode`` is PyJWT's, with the costs above removed."""
    decoding = jwt.PyJWT()
    if not tuned():
        return decoding
    jws = _Jws(options=decoding._jws.options)
    for name, hash_alg in _HMAC_ALGORITHMS.items():
        jws.unregister_algorithm(name)
        jws.register_algorithm(name, _KeyedHMAC(hash_alg))
    decoding._jws = jws
    return decoding
