"""Check HTTP API answers against the OpenAPI document the gateway serves."""

from __future__ import annotations

import functools
from http import HTTPStatus
from typing import Any

import httpx
import jsonschema_rs

from roomcast.server.openapi import build_spec


@functools.cache
def _validator(component: str) -> Any:
    # The component's refs point into the document: validate inside a copy of it.
    spec = build_spec()
    return jsonschema_rs.Draft202012Validator({"$ref": f"#/components/schemas/{component}",
                                               "components": spec["components"]})


def conforms(body: Any, component: str) -> None:
    """Raise if ``body`` does not match the spec's schema ``component``."""
    _validator(component).validate(body)


def problem(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The RFC 9457 body of an error answer, checked against the spec's ErrorModel."""
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/problem+json"), r.headers
    body: dict[str, Any] = r.json()
    conforms(body, "ErrorModel")
    assert body["status"] == status and body["title"] == HTTPStatus(status).phrase, body
    assert body["detail"], body
    assert body["$schema"].endswith("/schemas/ErrorModel.json"), body
    assert next(iter(body)) == "$schema", body  # first, as huma writes it
    assert 'rel="describedBy"' in r.headers.get("Link", ""), r.headers
    if code is not None:
        assert body["code"] == code, body
    return body


def answer(r: httpx.Response, component: str, status: int = 200) -> dict[str, Any]:
    """A successful JSON answer, checked against the spec's schema ``component``."""
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/json"), r.headers
    body: dict[str, Any] = r.json()
    conforms(body, component)
    assert body["$schema"].endswith(f"/schemas/{component}.json"), body
    return body


def bare(r: httpx.Response) -> dict[str, Any]:
    """The JSON body without its ``$schema`` link (which must be there)."""
    body: dict[str, Any] = r.json()
    assert str(body.pop("$schema", "")).startswith("http"), body
    return body
