"""Answers of the HTTP API as the Go gateway's framework (huma) writes them.

The Go gateway's errors are ``application/problem+json`` (RFC 9457) with huma's
fields ``{"$schema", title, status, detail, errors?: [{message, location,
value?}]}``, and every JSON body, success or error, starts with ``"$schema"``:
the URL of the JSON Schema describing it (served under ``{API_PREFIX}/schemas/``),
also given in a ``Link: <...>; rel="describedBy"`` header.

roomcast adds two RFC 9457 extension members that huma does not write and no
Go client reads: ``code``, a stable machine-readable error code
(``not_found``, ``invalid_body`` ...), and ``reason`` (why credentials were
refused). ``type`` is left out as huma does, which RFC 9457 reads as ``about:blank``.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, Final

import orjson
from aiohttp import web

PROBLEM_JSON: Final = "application/problem+json"
#: Component name of the error schema (huma's name).
ERROR_SCHEMA: Final = "ErrorModel"


class Problem(Exception):
    """An error answer: HTTP status, stable ``code``, one readable sentence.

    ``details`` name the offending fields: ``[{"field": "body.type", "message": ...}]``
    (written as huma's ``errors: [{location, message}]``).
    """

    def __init__(self, status: int, error: str, message: str, *,
                 details: list[dict[str, Any]] | None = None, reason: str | None = None,
                 headers: dict[str, str] | None = None, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.details = details
        self.reason = reason
        self.headers = headers
        #: Close the connection after the answer (the request's body was not read whole).
        self.close = close

    def body(self) -> dict[str, Any]:
        """The problem document (without ``$schema``, which needs the request)."""
        return problem_body(self.status, self.message, code=self.error, reason=self.reason,
                            details=self.details)

    def response(self) -> web.Response:
        response = web.Response(body=orjson.dumps(self.body()), status=self.status,
                                headers=self.headers, content_type=PROBLEM_JSON)
        if self.close:
            response.force_close()
        return response


def problem_body(status: int, detail: str, *, code: str | None = None,
                 reason: str | None = None,
                 details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """huma's ErrorModel fields plus roomcast's ``code`` and ``reason``."""
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body: dict[str, Any] = {"title": title, "status": status, "detail": detail}
    if details:
        errors = []
        for item in details:
            error: dict[str, Any] = {"message": str(item.get("message", ""))}
            where = item.get("location", item.get("field"))
            if where:
                error["location"] = str(where)
            if "value" in item:
                error["value"] = item["value"]
            errors.append(error)
        body["errors"] = errors
    if code is not None:
        body["code"] = code
    if reason is not None:
        body["reason"] = reason
    return body


def problem_response(status: int, detail: str, *, code: str | None = None,
                     reason: str | None = None, headers: dict[str, str] | None = None,
                     request: web.Request | None = None) -> web.Response:
    """A problem+json answer; with ``request``, ``$schema`` and ``Link`` are added."""
    response = Problem(status, code or _slug(status), detail, reason=reason,
                       headers=headers).response()
    return with_schema(request, response, ERROR_SCHEMA) if request is not None else response


def _slug(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def json_response(body: Any, *, status: int = 200,
                  headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, headers=headers,
                        content_type="application/json")


def schema_path(request: web.Request, name: str) -> str:
    """``{API_PREFIX}/schemas/{name}.json`` (the path the Link header names)."""
    from roomcast.server.state import gateway

    return f"{gateway(request).settings.api_prefix}/schemas/{name}.json"


def with_schema(request: web.Request, response: web.Response, name: str) -> web.Response:
    """Put ``"$schema"`` first in a JSON object body and add huma's ``Link`` header.

    The body is spliced, not re-encoded. The URL uses the scheme and host the
    client addressed (trusted forwarded headers included), where huma guesses
    https for every host but localhost.
    """
    body = response.body
    if not isinstance(body, bytes) or not body.startswith(b"{") or b'"$schema"' in body[:12]:
        return response
    path = schema_path(request, name)
    url = orjson.dumps(f"{request.scheme}://{request.host}{path}")
    rest = body[1:]
    response.body = b'{"$schema":' + url + (b"," + rest if rest.strip() != b"}" else b"}")
    response.headers.add("Link", f'<{path}>; rel="describedBy"')
    return response


def api_paths(prefix: str) -> tuple[str, ...]:
    """Where the HTTP API's paths start (its errors are problem+json)."""
    return (prefix + "/websocket/", prefix + "/schemas/")


def http_problem(exc: web.HTTPException, request: web.Request,
                 api: tuple[str, ...]) -> web.StreamResponse:
    """aiohttp's error for an API path as problem+json; ``exc`` raised again otherwise."""
    if exc.status < 400 or not request.path.startswith(api):
        raise exc
    kept = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
    return problem_response(exc.status, exc.reason, headers=kept, request=request)
