"""Key sources: where the keys that verify tokens come from, each with its own algorithms.

Every source names the algorithms it accepts, explicitly. A shared secret only ever
verifies HMAC algorithms and a public key only its own asymmetric family, so a token
cannot pick how its signature is checked (no algorithm confusion: an RS256 public key
is never used as an HS256 secret, ``alg: none`` is never accepted).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from roomcast.exceptions import ConfigError

SYMMETRIC = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
#: A verification key: an HMAC secret, or a public key bound to one algorithm.
Key = str | jwt.PyJWK


class KeySource(Protocol):
    """Keys of one kind (secret, PEM public key, JWKS URL) and their algorithms."""

    #: For logs and metrics: ``secret``, ``public_key`` or ``jwks``.
    kind: str
    #: The ``alg`` header values this source verifies; nothing else reaches it.
    algorithms: frozenset[str]

    async def start(self) -> None:
        """Load or fetch keys; a source that fetches keeps refreshing in the background."""

    async def close(self) -> None:
        """Stop background work."""

    async def key(self, alg: str, kid: str | None) -> Key:
        """The key that verifies a token with this ``alg`` (in ``algorithms``) and ``kid``.

        Raises:
            AuthError: ``unknown_key`` when the source has no such key.
        """
        ...


def parse_algorithms(raw: Iterable[str], allowed: frozenset[str], source: str) -> frozenset[str]:
    """An explicit algorithm list, checked against the family a source may use.

    Raises:
        ConfigError: an empty list, or an algorithm outside ``allowed`` (e.g. HS256 for
            a public key, or ``none``).
    """
    algs = frozenset(a.strip() for a in raw if a.strip())
    if not algs:
        raise ConfigError(f"{source}: the algorithm list is empty")
    wrong = sorted(algs - allowed)
    if wrong:
        raise ConfigError(
            f"{source}: {', '.join(wrong)} not allowed here (use {', '.join(sorted(allowed))})"
        )
    return algs


class SecretKeys:
    """A shared secret (``JWT_SECRET``): HMAC algorithms only, HS256 by default."""

    kind = "secret"

    def __init__(self, secret: str, algorithms: Iterable[str] = ("HS256",)) -> None:
        self.algorithms = parse_algorithms(algorithms, SYMMETRIC, "secret algorithms")
        self._secret = secret

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def key(self, alg: str, kid: str | None) -> Key:
        return self._secret


class PublicKeyFile:
    """One PEM public key (RSA, EC or Ed25519), bound to explicit algorithms.

    Without an explicit list the key's type decides: RSA -> RS256, EC P-256/384/521 ->
    ES256/384/512, Ed25519 -> EdDSA.
    """

    kind = "public_key"

    def __init__(self, pem: bytes, algorithms: Iterable[str] | None = None) -> None:
        try:
            public = serialization.load_pem_public_key(pem)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"public key: not a PEM public key ({exc})") from None
        self.algorithms = parse_algorithms(
            algorithms if algorithms is not None else [_default_algorithm(public)],
            ASYMMETRIC,
            "public key algorithms",
        )
        # One PyJWK per algorithm: PyJWT then verifies with that algorithm only.
        self._keys: dict[str, jwt.PyJWK] = {}
        for alg in self.algorithms:
            try:
                algorithm = jwt.get_algorithm_by_name(alg)
                self._keys[alg] = jwt.PyJWK(algorithm.to_jwk(public, as_dict=True), alg)
            except (jwt.PyJWTError, ValueError, TypeError, NotImplementedError) as exc:
                raise ConfigError(f"public key: cannot be used with {alg} ({exc})") from None

    @classmethod
    def from_file(cls, path: str, algorithms: Iterable[str] | None = None) -> PublicKeyFile:
        try:
            with open(path, "rb") as f:
                pem = f.read()
        except OSError as exc:
            raise ConfigError(f"public key: cannot read {path}: {exc.strerror}") from None
        return cls(pem, algorithms)

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def key(self, alg: str, kid: str | None) -> Key:
        return self._keys[alg]


def _default_algorithm(public: object) -> str:
    if isinstance(public, rsa.RSAPublicKey):
        return "RS256"
    if isinstance(public, ed25519.Ed25519PublicKey):
        return "EdDSA"
    if isinstance(public, ec.EllipticCurvePublicKey):
        by_curve = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
        if public.curve.name in by_curve:
            return by_curve[public.curve.name]
    raise ConfigError("public key: only RSA, EC (P-256/384/521) and Ed25519 keys are supported")
