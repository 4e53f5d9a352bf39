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
from roomcast.server.admin.problems import ERROR_SCHEMA, PROBLEM_JSON
from roomcast.server.admin.routes import OPERATIONS, Operation
from roomcast.server.tokens import PATH as TOKEN_REFRESH_PATH

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
    404: "No such connection or room, or nobody connected to the target.",
    408: "The body did not arrive within ROOMCAST_BODY_TIMEOUT; the connection is closed.",
    409: "Memberships come from the application (an http(s) membership URL): "
         "change them there.",
    415: "A cookie-authenticated request whose body is not application/json.",
    422: "Invalid path id, query parameter or body; `detail` and `errors` say which and why.",
    503: "Redis or a store is unreachable, or did not answer within the store timeout; "
         "retry later.",
    504: "Redis took the message but did not confirm it in time: other instances may or "
         "may not have it (never twice). A retry is a new message.",
}
_SCHEMA_PROPERTY: dict[str, Any] = {
    "type": "string", "format": "uri", "readOnly": True,
    "description": "A URL to the JSON Schema for this object.",
}


def _schemas() -> tuple[dict[tuple[type[BaseModel], JsonSchemaMode], dict[str, Any]],
                        dict[str, Any]]:
    models: set[tuple[type[BaseModel], JsonSchemaMode]] = {
        (bodies.ErrorModel, "serialization"), (bodies.Status, "serialization"),
        (bodies.RefreshBody, "validation"), (bodies.Refreshed, "serialization"),
    }
    for op in OPERATIONS:
        models.add((op.response, "serialization"))
        if op.body is not None:
            models.add((op.body, "validation"))
    refs, top = models_json_schema(sorted(models, key=lambda m: m[0].__name__),
                                   ref_template=_REF)
    defs: dict[str, Any] = top.get("$defs", {})
    for (model, mode), _ in refs.items():
        # Every answer body starts with "$schema", as huma writes it.
        if mode == "serialization" and model.__name__ in defs:
            defs[model.__name__]["properties"] = {"$schema": _SCHEMA_PROPERTY,
                                                  **defs[model.__name__]["properties"]}
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
            "content": {PROBLEM_JSON: {"schema": {"$ref": _REF.format(model=ERROR_SCHEMA)}}}}


def _ok_statuses(op: Operation) -> dict[str, str]:
    if op.response is bodies.Sent and op.operation_id in ("messageUser", "messageRoom"):
        return {"200": "Sent", "202": "Nobody is connected; stored in the room's history"}
    return {"200": "OK"}


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
        "responses": {code: {
            "description": text,
            "content": {"application/json": {"schema": refs[(op.response, "serialization")]}},
        } for code, text in _ok_statuses(op).items()},
    }
    if op.description:
        out["description"] = op.description
    # 503: every operation waits for its stores at most the store timeout.
    errors = {401, 403, 422, 503, *op.errors}
    if op.method != "GET":
        errors.add(415)  # a cookie-authenticated write must send JSON (CSRF guard)
    if op.body is not None:
        errors.add(408)
        out["requestBody"] = _request_body(op.body, refs, required=op.body_required)
    for status in sorted(errors):
        out["responses"][str(status)] = _problem(status)
    return out


def _request_body(model: type[BaseModel], refs: dict[Any, dict[str, Any]], *,
                  required: bool) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": refs[(model, "validation")]}
    extra = model.model_config.get("json_schema_extra")
    examples = extra.get("examples") if isinstance(extra, dict) else None
    if isinstance(examples, list) and examples:
        media["example"] = examples[0]
    return {"required": required, "content": {"application/json": media}}


def _public(prefix: str) -> dict[str, Any]:
    status_schema = {"$ref": _REF.format(model="Status")}
    probe = {"type": "object", "properties": {"status": {"type": "string"},
                                              "reason": {"type": "string"}}}
    return {
        f"{prefix}/websocket/status": {"get": {
            "operationId": "status", "summary": "Health of this instance (public)",
            "description": "Always 200, as the Go gateway answers; `status` says healthy or "
                           "unhealthy. Load balancers use /readyz.",
            "tags": ["status"], "security": [],
            "responses": {
                "200": {"description": "Health and counts",
                        "content": {"application/json": {"schema": status_schema}}},
            },
        }},
        "/healthz": {"get": {
            "operationId": "healthz", "summary": "Liveness probe (public)",
            "tags": ["status"], "security": [],
            "responses": {"200": {"description": "The process answers",
                                  "content": {"application/json": {"schema": probe}}}},
        }},
        "/readyz": {"get": {
            "operationId": "readyz", "summary": "Readiness probe (public)",
            "tags": ["status"], "security": [],
            "responses": {
                "200": {"description": "Ready for traffic",
                        "content": {"application/json": {"schema": probe}}},
                "503": {"description": "Shutting down, or Redis is unreachable",
                        "content": {"application/json": {"schema": probe}}},
            },
        }},
        "/metrics": {"get": {
            "operationId": "metrics", "summary": "Prometheus metrics of this instance (public)",
            "tags": ["status"], "security": [],
            "responses": {"200": {"description": "Prometheus text exposition format",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}}},
        }},
    }


def _token_refresh(prefix: str, refs: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    """The browser's cookie hand-over: the caller's own token, not an administrator's."""
    described = {
        401: "No valid token (bearer or cookie), or it is revoked.",
        403: "A cross-site request with the cookie.",
        404: "None of the named connections is the caller's and open.",
        408: _ERRORS[408],
        415: "A cookie-authenticated request whose body is not application/json.",
        422: "Invalid body; `detail` and `errors` say which and why.",
        503: "The revocation store or Redis is unreachable; retry later.",
    }
    return {f"{prefix}{TOKEN_REFRESH_PATH}": {"post": {
        "operationId": "refreshToken",
        "summary": "Hand the request's token to the caller's live connections",
        "description": "A page cannot read its HttpOnly cookie to send it over its "
                       "WebSocket: it posts the connection ids here with the fresh cookie, "
                       "and those connections take over the token's expiry, scopes and groups.",
        "tags": ["tokens"], "security": [{"bearerToken": []}, {"cookie": []}],
        "requestBody": _request_body(bodies.RefreshBody, refs, required=True),
        "responses": {
            "200": {"description": "The connections that took over the token",
                    "content": {"application/json": {
                        "schema": refs[(bodies.Refreshed, "serialization")]}}},
            **{str(code): {**_problem(code), "description": text}
               for code, text in described.items()},
        },
    }}}


def build_spec(prefix: str = "") -> dict[str, Any]:
    """The OpenAPI 3.1 document of the admin API, its paths under ``prefix``."""
    refs, schemas = _schemas()
    paths: dict[str, dict[str, Any]] = _public(prefix)
    for op in OPERATIONS:
        paths.setdefault(prefix + op.path, {})[op.method.lower()] = _operation(op, refs)
    paths.update(_token_refresh(prefix, refs))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "roomcast server API",
            "version": roomcast.__version__,
            "description": (
                "Administration and publishing API of the roomcast WebSocket gateway "
                "(the Go gateway's admin API, with real authorization). The status, "
                "probe and metrics routes are public; the token refresh takes the "
                "caller's own token; every other endpoint needs an administrator's token "
                f"(admin scope or listed user id) or the `{API_KEY_HEADER}` of an app "
                "backend. Errors "
                "are RFC 9457 problem details (`application/problem+json`) as the Go "
                "gateway writes them, plus a stable `code`."
            ),
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "tags": [{"name": n} for n in ("messages", "connections", "rooms", "users", "tokens",
                                       "status")],
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
def spec_bytes(prefix: str = "") -> bytes:
    """The spec as JSON, built once per process and prefix."""
    return orjson.dumps(build_spec(prefix))


@functools.cache
def _schema_bytes(prefix: str) -> dict[str, bytes]:
    """Each component as a JSON Schema of its own; refs point at sibling files (huma)."""
    schemas = build_spec(prefix)["components"]["schemas"]
    raw = orjson.dumps(schemas).replace(b'"#/components/schemas/', b'"./')
    out = {}
    for name, schema in orjson.loads(raw).items():
        fixed = _relative_refs(schema)
        out[name] = orjson.dumps({"$schema": "https://json-schema.org/draft/2020-12/schema",
                                  **fixed})
    return out


def _relative_refs(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: (f"{v}.json" if k == "$ref" and isinstance(v, str) and v.startswith("./")
                    else _relative_refs(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_relative_refs(v) for v in node]
    return node


def add_routes(app: web.Application, prefix: str = "") -> None:
    async def spec(request: web.Request) -> web.Response:
        return web.Response(body=spec_bytes(prefix), content_type="application/json")

    async def schema(request: web.Request) -> web.Response:
        body = _schema_bytes(prefix).get(request.match_info["name"])
        if body is None:
            raise web.HTTPNotFound(reason="no such schema")
        return web.Response(body=body, content_type="application/schema+json")

    app.router.add_get(prefix + SPEC_PATH, spec)
    app.router.add_get(prefix + "/schemas/{name}.json", schema)
    add_docs_routes(app, prefix + SPEC_PATH, prefix)
