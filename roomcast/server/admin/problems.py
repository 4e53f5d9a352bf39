"""Error answers of the admin API: an exception that becomes ``{error, message}``."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web


class Problem(Exception):
    """An error answer: HTTP status, stable ``error`` code, one readable sentence."""

    def __init__(self, status: int, error: str, message: str, *,
                 details: list[dict[str, str]] | None = None, reason: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.details = details
        self.reason = reason
        self.headers = headers

    def response(self) -> web.Response:
        body: dict[str, Any] = {"error": self.error, "message": self.message}
        if self.reason is not None:
            body["reason"] = self.reason
        if self.details is not None:
            body["details"] = self.details
        return json_response(body, status=self.status, headers=self.headers)


def json_response(body: Any, *, status: int = 200,
                  headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, headers=headers,
                        content_type="application/json")
