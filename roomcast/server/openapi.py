"""The admin API's OpenAPI 3.1 spec, generated from the operation table and pydantic models.

Served at ``/websocket/openapi.json``; ``/websocket/docs`` renders it (see
:mod:`roomcast.server.admin.docs_page`). Both are public: the spec holds no secrets.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

import roomcast
from roomcast.auth import COOKIE_NAME
from roomcast.server.admin import bodies
from roomcast.server.admin.docs_page import add_docs_routes
from roomcast.server.admin.guard import API_KEY_HEADER
from roomcast.server.admin.inputs import MAX_CONN_ID
from roomcast.server.admin.routes import OPERATIONS, Operation

SPEC_PATH = "/websocket/openapi.json"
_REF = "#/components/schemas/{model}"
_SECURITY: list[dict[str, list[str]]] = [{"apiKey": []}, {"bearerToken": []}, {"cookie": []}]

_PATH_PARAMS: dict[str, dict[str, Any]] = {
    "user_id": {"type": "string", "pattern": bodies.ID_PATTERN, "examples": ["alice"]},
    "group_id": {"type": "string", "pattern": bodies.ID_PATTERN, "examples": ["blue"]},
    "room_id": {"type": "string", "pattern": bodies.ROOM_PATTERN, "examples": ["group:blue"]},
    "connection_id": {"type": "string", "minLength": 1, "maxLength": MAX_CONN_ID,
                      "examples": ["7f1d2c9e-3b8a-4c55-9f0e-2a6d1b4c8e71"]},
}

_ERRORS = {
    401: "No valid credentials (no or wrong API key, missing, expired or invalid token).",
    403: "Valid token, but not an administrator; or a cross-site request with the cookie.",
    404: "No such connection or room.",
    415: "A cookie-authenticated request whose body is not application/json.",
    422: "Invalid path id, query parameter or body; `message` says which and why.",
    503: "The broker or membership store is unreachable; `message` says what happened.",
}


def _schemas() -> tuple[dict[tuple[type[BaseModel], JsonSchemaMode], dict[str, Any]],
                        dict[str, Any]]:
    models: set[tuple[type[BaseModel], JsonSchemaMode]] = {
        (bodies.ErrorBody, "serialization"), (bodies.Status, "serialization"),
    }
    for op in OPERATIONS:
        models.add((op.response, "serialization"))
        if op.body is not None:
            models.add((op.body, "validation"))
    refs, top = models_json_schema(sorted(models, key=lambda m: m[0].__name__),
                                   ref_template=_REF)
    defs: dict[str, Any] = top.get("$defs", {})
    return {(m, mode): schema for (m, mode), schema in refs.items()
            if isinstance(m, type) and issubclass(m, BaseModel)}, defs


def _query_params(model: type[BaseModel]) -> list[dict[str, Any]]:
    """Query parameters from a model's fields; ``null`` is not a query value."""
    out = []
    for name, prop in model.model_json_schema()["properties"].items():
        schema = dict(prop)
        for key in ("title", "default"):
            schema.pop(key, None)
        branches = [b for b in schema.pop("anyOf", []) if b.get("type") != "null"]
        if branches:
            schema.update(branches[0])
        out.append({"name": name, "in": "query", "required": False, "schema": schema})
    return out


def _problem(status: int) -> dict[str, Any]:
    return {"description": _ERRORS[status],
            "content": {"application/json": {"schema": {"$ref": _REF.format(model="ErrorBody")}}}}


def _operation(op: Operation, refs: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    params = [{"name": name, "in": "path", "required": True, "schema": _PATH_PARAMS[name]}
              for name in re.findall(r"{(\w+)}", op.path)]
    if op.query is not None:
        params += _query_params(op.query)
    out: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "security": _SECURITY,
        "parameters": params,
        "responses": {"200": {
            "description": "OK",
            "content": {"application/json": {"schema": refs[(op.response, "serialization")]}},
        }},
    }
    if op.description:
        out["description"] = op.description
    errors = {401, 403, 422, *op.errors}
    if op.method != "GET":
        errors.add(415)  # a cookie-authenticated write must send JSON (CSRF guard)
    if op.body is not None:
        media: dict[str, Any] = {"schema": refs[(op.body, "validation")]}
        extra = op.body.model_config.get("json_schema_extra")
        examples = extra.get("examples") if isinstance(extra, dict) else None
        if isinstance(examples, list) and examples:
            media["example"] = examples[0]
        out["requestBody"] = {"required": op.body_required,
                              "content": {"application/json": media}}
    for status in sorted(errors):
        out["responses"][str(status)] = _problem(status)
    return out


def _public() -> dict[str, Any]:
    status_schema = {"$ref": _REF.format(model="Status")}
    return {
        "/websocket/status": {"get": {
            "operationId": "status", "summary": "Health of this instance (public)",
            "tags": ["status"], "security": [],
            "responses": {
                "200": {"description": "Healthy",
                        "content": {"application/json": {"schema": status_schema}}},
                "503": {"description": "Redis or the registry is unreachable",
                        "content": {"application/json": {"schema": status_schema}}},
            },
        }},
        "/metrics": {"get": {
            "operationId": "metrics", "summary": "Prometheus metrics of this instance (public)",
            "tags": ["status"], "security": [],
            "responses": {"200": {"description": "Prometheus text exposition format",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}}},
        }},
    }


def build_spec() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the admin API."""
    refs, schemas = _schemas()
    paths: dict[str, dict[str, Any]] = _public()
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "roomcast server API",
            "version": roomcast.__version__,
            "description": (
                "Administration and publishing API of the roomcast WebSocket gateway "
                "(the Go gateway's admin API, with real authorization). Every endpoint "
                "but status and metrics needs an administrator's token (admin scope or "
                f"listed user id) or the `{API_KEY_HEADER}` of an app backend. Errors "
                "are `{error, message}`."
            ),
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "tags": [{"name": n} for n in ("messages", "connections", "rooms", "users", "status")],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER,
                           "description": "ROOMCAST_API_KEY of an app backend"},
                "bearerToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                "description": "An administrator's gateway token"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": COOKIE_NAME,
                           "description": "The login cookie (same-site JSON requests only)"},
            },
        },
    }


@functools.cache
def spec_bytes() -> bytes:
    """The spec as JSON, built once per process: it depends on nothing configurable."""
    return orjson.dumps(build_spec())


async def spec(request: web.Request) -> web.Response:
    return web.Response(body=spec_bytes(), content_type="application/json")


def add_routes(app: web.Application) -> None:
    app.router.add_get(SPEC_PATH, spec)
    add_docs_routes(app, SPEC_PATH)
