"""Reading an admin request: path ids, query parameters and JSON bodies, each a readable 422."""

from __future__ import annotations

import asyncio
import re
from typing import TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from roomcast.server.admin.bodies import ID_RE, ROOM_RE
from roomcast.server.admin.problems import Problem
from roomcast.server.state import gateway

M = TypeVar("M", bound=BaseModel)
MAX_CONN_ID = 128


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
        where = ".".join(str(p) for p in err["loc"])
        # "Value error, must be one of ..." -> "must be one of ..."
        msg = _PLAIN.get(err["type"]) or err["msg"].removeprefix("Value error, ")
        out.append({"field": (prefix + where).rstrip(".") or "body", "message": msg})
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

    ``limit`` bounds the body in bytes; an absent (empty) body counts as ``{}`` unless
    ``required``.
    """
    length = request.content_length
    if length is not None and length > limit:
        raise Problem(422, "too_large", f"body of {length} bytes exceeds the {limit}-byte limit")
    raw = await receive_body(request, limit=limit)
    if len(raw) > limit:
        raise Problem(422, "too_large", f"body exceeds the {limit}-byte limit")
    if not raw:  # a body of whitespace only is not JSON either: 422 below
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
        raise invalid(exc, prefix="body.") from None


async def receive_body(request: web.Request, *, limit: int) -> bytes:
    """The request's whole body, within ``ROOMCAST_BODY_TIMEOUT`` (aiohttp keeps it: later
    reads return it at once). 408 when it does not arrive in time (a sender that trickles
    it would hold a connection and a task for as long as it liked), 400 when the client
    leaves before it is complete; the connection is closed after either answer.
    """
    timeout = gateway(request).settings.body_timeout
    try:
        if request.content.is_eof():
            # All there (as a small body is, sent with its head): no deadline to arm,
            # whose timer cost a message sent through the API ~50,000 instructions.
            return await request.read()
        async with asyncio.timeout(timeout):
            return await request.read()
    except web.HTTPRequestEntityTooLarge:
        # aiohttp stops reading past the app's client_max_size (1 MiB) with a 413.
        raise Problem(422, "too_large", f"body exceeds the {limit}-byte limit") from None
    except TimeoutError:
        raise Problem(408, "timeout", f"the request body did not arrive within {timeout:g} s",
                      close=True) from None
    except ConnectionResetError:
        raise Problem(400, "incomplete_body", "the connection closed before the body was "
                      "complete", close=True) from None


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
    if not pattern.fullmatch(value):  # match() lets "$" pass a final newline
        raise Problem(
            422, "invalid_path",
            f"{name}: {value[:80]!r} is not a valid {what}",
            details=[{"field": f"path.{name}", "message": f"must match {pattern.pattern}"}],
        )
    return value


def connection_id(request: web.Request) -> str:
    """The ``{connection_id}`` of the path; ids are opaque, so only the length is checked."""
    value = request.match_info["connection_id"]
    if len(value) > MAX_CONN_ID:
        raise Problem(422, "invalid_path", f"connection_id: longer than {MAX_CONN_ID} characters",
                      details=[{"field": "path.connection_id",
                                "message": f"at most {MAX_CONN_ID} characters"}])
    return value


def room_id(request: web.Request) -> str:
    return path_id(request, "room_id", ROOM_RE, "room id (user:ID or group:ID)")


def user_id(request: web.Request) -> str:
    return path_id(request, "user_id", ID_RE, "user id")


def group_id(request: web.Request) -> str:
    return path_id(request, "group_id", ID_RE, "group id")
