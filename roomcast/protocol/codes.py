"""Wire codes: error codes of ``error`` messages and WebSocket close codes."""

from __future__ import annotations

from enum import IntEnum, StrEnum


class ErrorCode(StrEnum):
    """The ``data.code`` of an ``error`` message."""

    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_FIELD = "invalid_field"
    BINARY_NOT_SUPPORTED = "binary_not_supported"
    TOO_LARGE = "too_large"
    FORBIDDEN = "forbidden"
    UNAUTHORIZED = "unauthorized"
    NOT_FOUND = "not_found"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"

    @property
    def temporary(self) -> bool:
        """Whether the same message may succeed later."""
        return self in _TEMPORARY


_TEMPORARY = frozenset({ErrorCode.RATE_LIMITED, ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL})


class CloseCode(IntEnum):
    """WebSocket close codes roomcast sends."""

    NORMAL = 1000
    GOING_AWAY = 1001  # server shutting down: reconnect, maybe elsewhere
    PROTOCOL_ERROR = 1002  # a frame RFC 6455 forbids (an unmasked client frame)
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SLOW_CONSUMER = 3008  # write queue overflowed
    STALE = 3009  # no frame from the client within the liveness timeout
    INSUFFICIENT_STATE = 3010  # a gap in a room's stream: reconnect and recover
    TOKEN_EXPIRED = 3401  # the token expired unrefreshed: reconnect with a fresh token
    REVOKED = 3403  # the user was logged out everywhere: do not reconnect with this token
    KICKED = 3500  # removed by an administrator: do not reconnect automatically

    @property
    def reconnect(self) -> bool:
        """Whether a client should reconnect after this close."""
        return self not in _NO_RECONNECT


_NO_RECONNECT = frozenset(
    {CloseCode.PROTOCOL_ERROR, CloseCode.POLICY_VIOLATION, CloseCode.REVOKED, CloseCode.KICKED}
)
