"""The OpenAPI spec, the docs page, and a schemathesis run against a live gateway."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from pydantic import BaseModel

from roomcast.server.admin import bodies
from roomcast.server.admin.routes import OPERATIONS
from tests.admin.support import API_KEY
from tests.helpers.gateway import GatewayProcess


@pytest.fixture(scope="module")
def spec(admin_gw: GatewayProcess) -> dict[str, Any]:
    r = httpx.get(f"{admin_gw.base_url}/websocket/openapi.json", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    body: dict[str, Any] = r.json()
    return body


def test_spec_is_valid_openapi_3_1(spec: dict[str, Any]) -> None:
    assert spec["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(spec).validate()  # against the OpenAPI 3.1 meta-schema


def test_every_operation_is_described(spec: dict[str, Any]) -> None:
    for op in OPERATIONS:
        described = spec["paths"][op.path][op.method.lower()]
        assert described["operationId"] == op.operation_id
        assert described["summary"]
        assert {"apiKey": []} in described["security"]
        assert {"200", "401", "403", "422", "503"} <= set(described["responses"])
        if op.body is not None:
            media = described["requestBody"]["content"]["application/json"]
            assert media["schema"]["$ref"].startswith("#/components/schemas/")
            assert media["example"]
    assert spec["paths"]["/websocket/status"]["get"]["security"] == []
    # The browser's cookie hand-over takes the caller's own token, never an API key.
    refresh = spec["paths"]["/websocket/token/refresh"]["post"]
    assert {"apiKey": []} not in refresh["security"] and {"cookie": []} in refresh["security"]
    assert refresh["requestBody"]["content"]["application/json"]["example"]["connection_ids"]
    assert {"200", "401", "404", "422", "503"} <= set(refresh["responses"])
    schemas = spec["components"]["schemas"]
    assert schemas["MessageBody"]["properties"]["type"]["enum"][0] == "message"
    assert len(schemas["MessageBody"]["properties"]["type"]["enum"]) == 10


def test_examples_are_valid() -> None:
    """Every example the spec shows is accepted by the model it illustrates."""
    models = [m for m in vars(bodies).values()
              if isinstance(m, type) and issubclass(m, BaseModel) and m is not BaseModel]
    with_examples = [m for m in models
                     if isinstance(m.model_config.get("json_schema_extra"), dict)]
    assert len(with_examples) >= 10
    for model in with_examples:
        extra = model.model_config.get("json_schema_extra")
        assert isinstance(extra, dict)
        examples = extra["examples"]
        assert isinstance(examples, list)
        for example in examples:
            model.model_validate(example)


def test_docs_page_is_self_contained(admin_gw: GatewayProcess) -> None:
    with httpx.Client(base_url=admin_gw.base_url, timeout=10) as http:
        page = http.get("/websocket/docs")
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
        assert 'src="/websocket/docs.js"' in page.text
        assert 'data-spec="/websocket/openapi.json"' in page.text
        assert "http" not in page.text.replace('href="/websocket/openapi.json"', "").lower()
        script = http.get("/websocket/docs.js")
        assert script.headers["Content-Type"].startswith("text/javascript")
        assert "fetch(spec)" in script.text
        assert "innerHTML" not in script.text
        assert http.get("/websocket/docs.css").status_code == 200


@pytest.fixture(scope="module")
def live_schema(admin_gw: GatewayProcess) -> Any:
    schema = schemathesis.openapi.from_url(f"{admin_gw.base_url}/websocket/openapi.json")
    schema.config.update(base_url=admin_gw.base_url)
    return schema


schema = schemathesis.pytest.from_fixture("live_schema")


# Hundreds of real HTTP calls in one test item: generous on a busy machine.
@pytest.mark.timeout(900)
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_schemathesis_finds_no_5xx_and_no_contradiction(case: Any) -> None:
    """Every generated call, valid or not, is answered as the spec says (never 5xx)."""
    case.call_and_validate(headers={"X-API-Key": API_KEY})
