"""Errors the client SDK raises, all below :class:`roomcast.exceptions.RoomcastError`.

.. code-block:: text

    RoomcastError
    └── ClientError
        ├── AuthRejected (AuthError)          401/403 at the handshake, even after a refresh
        ├── AckTimeout (TimeoutError)         no reply carrying the message's id in time
        ├── ServerError                       the server replied ``error``; has ``code``
        ├── QueueFull                         the offline queue is at its limit
        ├── ServerClosed                      closed with a code that forbids reconnecting
        ├── ConnectTimeout (TimeoutError)     no connection within the caller's deadline
        ├── ConnectionLost (ConnectionClosed) sent, then the connection dropped before a reply
        └── ClientClosed (ConnectionClosed)   the client is closed
"""

from __future__ import annotations

from typing import Any

from roomcast.exceptions import AuthError, ConnectionClosed, RoomcastError


class ClientError(RoomcastError):
    """Base class of the SDK's errors."""


class AuthRejected(ClientError, AuthError):
    """The gateway refused the credentials at the handshake (HTTP 401 or 403)."""

    def __init__(self, status: int, server_reason: str | None = None) -> None:
        what = "origin or credentials forbidden" if status == 403 else "credentials rejected"
        super().__init__(f"authentication failed: HTTP {status} ({server_reason or what})")
        self.reason = f"http_{status}"
        #: The HTTP status of the refused handshake.
        self.status = status
        #: Why, as the gateway said it (``expired``, ``bad_signature``...), if it did.
        self.server_reason = server_reason


class AckTimeout(ClientError, TimeoutError):
    """No reply with the message's ``id`` arrived within the timeout.

    The message was written to the socket: the server may or may not have acted on it.
    """

    def __init__(self, message_id: str, timeout: float) -> None:
        super().__init__(f"no reply to message {message_id} within {timeout:g} s")
        self.message_id = message_id
        self.timeout = timeout


class ServerError(ClientError):
    """The server answered a message with an ``error`` reply."""

    def __init__(self, code: str, message: str, *, temporary: bool, message_id: str | None,
                 reason: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        #: The wire code (``forbidden``, ``invalid_field``, ...; see ``ErrorCode``).
        self.code = code
        #: The server's human-readable explanation.
        self.message = message
        #: Whether sending the same message later may succeed.
        self.temporary = temporary
        self.message_id = message_id
        #: A finer cause, when the server gives one (a refused refresh: ``expired``, ...).
        self.reason = reason

    @classmethod
    def from_data(cls, data: dict[str, Any], message_id: str | None) -> ServerError:
        """Build from the ``data`` of an ``error`` envelope, tolerating missing fields."""
        return cls(
            str(data.get("code", "unknown")),
            str(data.get("message", "")),
            temporary=bool(data.get("temporary", False)),
            message_id=message_id,
            reason=str(data["reason"]) if data.get("reason") is not None else None,
        )


class QueueFull(ClientError):
    """The offline queue is full; the message was not queued (or was dropped from it)."""


class ServerClosed(ClientError):
    """The server closed the connection with a code that forbids reconnecting."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"server closed the connection: {code} {reason}".rstrip())
        self.code = code
        self.reason = reason


class ConnectTimeout(ClientError, TimeoutError):
    """The client did not get connected within the caller's deadline."""


class ConnectionLost(ClientError, ConnectionClosed):
    """The connection dropped after the message was written and before its reply.

    The message is not sent again (it may already have been delivered).
    """


class ClientClosed(ClientError, ConnectionClosed):
    """The client is closed: nothing more is sent or received."""
