"""Error answers of the admin API, and reading its bodies, queries and path ids."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


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


#: pydantic's wording where JSON words read better.
_PLAIN = {
    "missing": "is required",
    "dict_type": "must be a JSON object",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
}


def _details(exc: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    out = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        where = ".".join(str(p) for p in err["loc"]) or "body"
        # "Value error, must be one of ..." -> "must be one of ..."
        msg = _PLAIN.get(err["type"]) or err["msg"].removeprefix("Value error, ")
        out.append({"field": prefix + where, "message": msg})
    return out


def invalid(exc: ValidationError, *, error: str = "invalid_body",
            prefix: str = "") -> Problem:
    """A 422 naming each offending field."""
    details = _details(exc, prefix)
    text = "; ".join(f"{d['field']}: {d['message']}" for d in details[:5])
    return Problem(422, error, text, details=details)


async def read_body(request: web.Request, model: type[M], *, limit: int,
                    required: bool = True) -> M:
    """Parse a JSON body into ``model``; every failure is a readable 422.

    ``limit`` bounds the body in bytes; an absent body counts as ``{}`` unless
    ``required``.
    """
    length = request.content_length
    if length is not None and length > limit:
        raise Problem(422, "too_large", f"body of {length} bytes exceeds the {limit}-byte limit")
    try:
        # aiohttp stops reading past the app's client_max_size (1 MiB) with a 413.
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise Problem(422, "too_large", f"body exceeds the {limit}-byte limit") from None
    if len(raw) > limit:
        raise Problem(422, "too_large", f"body exceeds the {limit}-byte limit")
    if not raw.strip():
        if required:
            raise Problem(422, "invalid_body", "a JSON object body is required")
        raw = b"{}"
    try:
        # orjson first: strict JSON (no NaN), and its message says where the error is.
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Problem(422, "invalid_json", f"body is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise Problem(422, "invalid_body", "body must be a JSON object")
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        raise invalid(exc) from None


def read_query(request: web.Request, model: type[M]) -> M:
    """Validate query parameters (the first value of each) into ``model``."""
    params = {key: request.query.getone(key) for key in request.query}
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise invalid(exc, error="invalid_query", prefix="query.") from None


def path_id(request: web.Request, name: str, pattern: re.Pattern[str], what: str) -> str:
    """A path parameter that must match ``pattern`` (422 otherwise)."""
    value = request.match_info[name]
    if not pattern.match(value):
        raise Problem(
            422, "invalid_path",
            f"{name}: {value[:80]!r} is not a valid {what}",
            details=[{"field": f"path.{name}", "message": f"must match {pattern.pattern}"}],
        )
    return value
