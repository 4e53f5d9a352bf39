"""The opening handshake: URL, credential headers, and which failures to retry."""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from enum import Enum
from urllib.parse import urlsplit, urlunsplit

from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI

from roomcast.client.errors import ClientError

#: The endpoint path of the Go gateway.
DEFAULT_PATH = "/websocket/connect"
#: The cookie the gateway's login flow sets.
COOKIE_NAME = "falcon_auth_token"
_SCHEMES = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}


class HandshakeFailed(ClientError):
    """The gateway refused the upgrade with a status that retrying will not fix."""

    def __init__(self, status: int) -> None:
        super().__init__(f"handshake refused: HTTP {status}")
        self.status = status


class Failure(Enum):
    """What a failed connection attempt calls for."""

    RETRY = "retry"
    AUTH = "auth"
    FATAL = "fatal"


def normalize_url(url: str) -> str:
    """Accept ``http(s)://`` and a bare host; add the default path when none is given.

    Raises:
        ValueError: not a ``ws``, ``wss``, ``http`` or ``https`` URL.
    """
    parts = urlsplit(url)
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ValueError(f"not a WebSocket URL: {url!r} (expected ws://host:port/...)")
    path = parts.path if parts.path not in ("", "/") else DEFAULT_PATH
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def credential_headers(
    *, bearer: str | None, cookie: str | None, extra: Mapping[str, str] | None
) -> list[tuple[str, str]]:
    """Handshake headers: the caller's, then ``Authorization`` or the auth cookie."""
    headers = list((extra or {}).items())
    if bearer is not None:
        headers.append(("Authorization", f"Bearer {bearer}"))
    if cookie is not None:
        headers.append(("Cookie", f"{COOKIE_NAME}={cookie}"))
    return headers


def refusal_reason(exc: BaseException) -> str | None:
    """The ``reason`` of a refused handshake's JSON body (``expired``...), if it has one."""
    if not isinstance(exc, InvalidStatus):
        return None
    try:
        body = json.loads(exc.response.body or b"")
    except ValueError:
        return None
    reason = body.get("reason") if isinstance(body, dict) else None
    # A short word from the server; anything else is not worth repeating to a user.
    return reason[:64] if isinstance(reason, str) and reason.isprintable() else None


def classify(exc: BaseException) -> tuple[Failure, int | None]:
    """Whether a failed attempt is worth retrying, and the HTTP status if there was one.

    Like websockets' default ``process_exception``: network errors, timeouts and 5xx
    are retried. 401/403 are credentials (or Origin), handled by the caller. Other
    statuses (404: wrong path), bad URLs and untrusted certificates will not get better.
    """
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        if status in (401, 403):
            return Failure.AUTH, status
        if status >= 500 or status in (408, 429):
            return Failure.RETRY, status
        return Failure.FATAL, status
    if isinstance(exc, InvalidURI | ValueError | ssl.SSLCertVerificationError):
        # A certificate the client does not trust will not become trusted by retrying.
        return Failure.FATAL, None
    if isinstance(exc, OSError | TimeoutError | InvalidHandshake | EOFError):
        return Failure.RETRY, None
    return Failure.FATAL, None
