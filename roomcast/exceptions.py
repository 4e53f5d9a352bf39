"""All roomcast exceptions, in one hierarchy.

.. code-block:: text

    RoomcastError
    ├── ProtocolError        invalid client input; carries a wire ``code``
    ├── Forbidden            room or connection not shared with the sender
    ├── NotFound             unknown connection, room or user
    ├── AuthError            missing, invalid or expired credentials
    ├── ConnectionClosed     writing to a connection that is gone
    ├── BrokerError          a publish could not be carried out
    │   └── BrokerUnavailable    the broker backend is unreachable
    │       └── DeliveryUnknown      sent, but not confirmed: it may have been delivered
    ├── StoreError           the membership store failed
    │   └── StoreReadOnly        memberships are changed elsewhere (the application)
    ├── ConfigError (ValueError)  a bad setting; the CLI prints it as one line
    └── ApiError             the server HTTP API answered an error (``roomcast.api``)
        ├── ApiAuthError (AuthError)   401/403: no, wrong or non-admin credentials
        ├── ApiNotFound (NotFound)     404: unknown connection or room
        ├── ApiInvalid (ValueError)    415/422: invalid request; ``details`` name fields
        └── ApiUnavailable             503 or unreachable: may succeed later
"""

from __future__ import annotations

from typing import Any

from roomcast.protocol.codes import ErrorCode


class RoomcastError(Exception):
    """Base class of every roomcast error."""


class ProtocolError(RoomcastError):
    """A client frame that roomcast cannot accept."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        #: The ``id`` of the offending client message, when it could be read.
        self.message_id: str | None = None
        #: A finer machine-readable cause (a refused refresh's reason), sent as ``reason``.
        self.reason: str | None = None

    @property
    def temporary(self) -> bool:
        """Whether retrying the same input could succeed."""
        return self.code.temporary


class Forbidden(ProtocolError):
    """The sender may not address that room or connection."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.FORBIDDEN, message)


class NotFound(RoomcastError):
    """An unknown connection, room or user."""


class AuthError(RoomcastError):
    """Credentials are missing, malformed, expired or wrongly signed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        #: Short machine-readable reason, used as a metrics label.
        self.reason = reason


class ConnectionClosed(RoomcastError):
    """The connection is closed or closing."""


class BrokerError(RoomcastError):
    """A publish or history call failed."""


class BrokerUnavailable(BrokerError):
    """The broker backend cannot be reached right now."""


class DeliveryUnknown(BrokerUnavailable):
    """The publication was sent but never confirmed (e.g. Redis stalled past the timeout).

    The other instances may or may not have received it; it is never sent again, so
    each receives it at most once.
    """


class StoreError(RoomcastError):
    """The membership store failed."""


class StoreReadOnly(StoreError):
    """The membership store only reads: memberships are changed where they live."""


class ConfigError(RoomcastError, ValueError):
    """A setting is invalid; ``str(exc)`` is a one-line explanation."""


class ApiError(RoomcastError):
    """An error answer of the server HTTP API: ``str(exc)`` is the server's sentence."""

    def __init__(self, message: str, *, status: int | None, error: str,
                 reason: str | None = None, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        #: HTTP status, or None when the server could not be reached.
        self.status = status
        #: The stable ``error`` code of the answer (``not_found``, ``invalid_body`` ...).
        self.error = error
        #: Why credentials were refused (``bad_api_key``, ``expired``, ``not_admin`` ...);
        #: the ``error`` code for other answers.
        self.reason: str = reason or error
        #: ``[{field, message}]`` for invalid requests.
        self.details = details or []

    @property
    def temporary(self) -> bool:
        """Whether the same call may succeed later."""
        return self.status is None or self.status >= 500


class ApiAuthError(ApiError, AuthError):
    """401: no or wrong credentials; 403: valid, but not an administrator's."""


class ApiNotFound(ApiError, NotFound):
    """404: the connection or room does not exist (now)."""


class ApiInvalid(ApiError, ValueError):
    """The request was refused as invalid (422, 415); see ``details``."""


class ApiUnavailable(ApiError):
    """502, 503 or 504, or the server could not be reached: the broker or a store is down
    or slow (a 504 ``delivery_unknown`` send may have been delivered: retrying repeats it)."""
