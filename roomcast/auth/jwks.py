"""Keys of an identity provider's JWKS URL: cached by ``kid``, refreshed, rate-limited.

- Fetched at start and every ``refresh_interval`` seconds in the background.
- A token with an unknown ``kid`` (a key rotated in since the last fetch) triggers a
  fetch at once, but at most one every ``min_fetch_interval`` seconds: a flood of made-up
  ``kid`` values costs the provider one request per interval, and concurrent callers
  share one fetch.
- A failed fetch keeps the keys already cached, so the gateway goes on verifying while
  the provider is down; only a successful fetch replaces them (a key the provider
  dropped stops working at the next successful fetch).
- Symmetric (``oct``) keys and encryption keys in the set are ignored: a public JWKS
  must never supply an HMAC secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any

import aiohttp
import jwt
import orjson

from roomcast import metrics
from roomcast.auth.keys import ASYMMETRIC, Key, parse_algorithms
from roomcast.exceptions import AuthError
from roomcast.logs import log_event
from roomcast.supervisor import supervise

_log = logging.getLogger("roomcast.auth")
#: Largest JWKS document accepted.
_MAX_BYTES = 1 << 20


class JwksKeys:
    """A :class:`~roomcast.auth.keys.KeySource` backed by a JWKS URL."""

    kind = "jwks"

    def __init__(
        self,
        url: str,
        algorithms: Iterable[str] = ("RS256", "ES256", "EdDSA"),
        *,
        refresh_interval: float = 300.0,
        min_fetch_interval: float = 10.0,
        timeout: float = 5.0,
    ) -> None:
        self.url = url
        self.algorithms = parse_algorithms(algorithms, ASYMMETRIC, "JWKS algorithms")
        self.refresh_interval = refresh_interval
        self.min_fetch_interval = min_fetch_interval
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        #: kid (None for a key without one) -> its JWK as published.
        self._jwks: dict[str | None, dict[str, Any]] = {}
        self._bound: dict[tuple[str | None, str], jwt.PyJWK] = {}
        self._last_attempt = float("-inf")
        self._fetching: asyncio.Task[bool] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def kids(self) -> list[str | None]:
        """The key ids cached right now."""
        return list(self._jwks)

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        await self._fetch_shared()
        self._refresher = supervise("jwks-refresh", self._refresh_forever)

    async def close(self) -> None:
        for task in (self._refresher, self._fetching):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def key(self, alg: str, kid: str | None) -> Key:
        found = self._lookup(alg, kid)
        if found is None and kid not in self._jwks and self._may_fetch():
            await self._fetch_shared()
            found = self._lookup(alg, kid)
        if found is None:
            raise AuthError("unknown_key")
        return found

    def _lookup(self, alg: str, kid: str | None) -> jwt.PyJWK | None:
        """The key ``kid`` bound to ``alg``, if the provider publishes it for that alg."""
        if kid is None and None not in self._jwks and len(self._jwks) == 1:
            kid = next(iter(self._jwks))  # a token without kid and a set of one key
        cached = self._bound.get((kid, alg))
        if cached is not None:
            return cached
        jwk = self._jwks.get(kid)
        if jwk is None or jwk.get("alg", alg) != alg:
            return None
        try:
            bound = jwt.PyJWK(jwk, alg)
        except jwt.PyJWTError:
            return None  # e.g. an EC key named by an RS256 token
        self._bound[(kid, alg)] = bound
        return bound

    def _may_fetch(self) -> bool:
        return (
            self._fetching is not None
            or time.monotonic() - self._last_attempt >= self.min_fetch_interval
        )

    async def _fetch_shared(self) -> bool:
        """Fetch once for every concurrent caller; True if the keys were replaced."""
        if self._fetching is None:
            self._last_attempt = time.monotonic()
            self._fetching = asyncio.create_task(self._fetch())
            self._fetching.add_done_callback(self._fetched)
        return await asyncio.shield(self._fetching)

    def _fetched(self, task: asyncio.Task[bool]) -> None:
        self._fetching = None

    async def _refresh_forever(self) -> None:
        ok = bool(self._jwks)
        while True:
            # After a failure, try again soon (but within the rate limit).
            await asyncio.sleep(
                self.refresh_interval if ok else max(1.0, self.min_fetch_interval)
            )
            ok = await self._fetch_shared()

    async def _fetch(self) -> bool:
        assert self._session is not None
        try:
            async with self._session.get(self.url, allow_redirects=False) as response:
                if response.status != 200:
                    raise ValueError(f"HTTP {response.status}")
                body = await response.content.read(_MAX_BYTES + 1)
            if len(body) > _MAX_BYTES:
                raise ValueError("JWKS document too large")
            keys = _usable_keys(orjson.loads(body))
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            metrics.JWKS_FETCHES.labels("error").inc()
            log_event(_log, "jwks_fetch_failed", logging.WARNING, url=self.url,
                      error=str(exc) or type(exc).__name__, cached_keys=len(self._jwks))
            return False
        metrics.JWKS_FETCHES.labels("ok").inc()
        if set(keys) != set(self._jwks):
            log_event(_log, "jwks_keys", url=self.url, kids=sorted(k or "" for k in keys))
        self._jwks, self._bound = keys, {}
        return True


def _usable_keys(document: object) -> dict[str | None, dict[str, Any]]:
    """The signature keys of a JWKS document, by kid.

    Raises:
        ValueError: not a JWK set, or no usable key in it.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK set (no 'keys' list)")
    keys: dict[str | None, dict[str, Any]] = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, dict) or jwk.get("kty") == "oct" or jwk.get("use", "sig") != "sig":
            continue
        kid = jwk.get("kid")
        if kid is not None and not isinstance(kid, str):
            continue
        try:
            jwt.PyJWK(jwk)
        except jwt.PyJWTError:
            continue  # an unsupported key type; the others still count
        keys[kid] = jwk
    if not keys:
        raise ValueError("the JWK set has no usable signature key")
    return keys
